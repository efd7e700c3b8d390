package openrpc_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/openrpc"
)

type MoveArgs struct {
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	Label *string `json:"label"`
}

func Example() {
	m := wsrpc.NewMethods()
	wsrpc.NewMethod[MoveArgs, bool]("move").Doc("Moves the cursor.").
		Errors(&wsrpc.Error{Code: 409, Message: "busy"}).
		Register(m, func(context.Context, MoveArgs) (bool, error) { return true, nil })
	m.Calls(wsrpc.NewNotification[string]("moved"))
	openrpc.Serve(m, openrpc.Info{Title: "cursor", Version: "1.0.0"})

	// What a peer gets when it calls rpc.discover (Document returns the
	// same as a value).
	res, err := m.Invoke(context.Background(), &wsrpc.Request{Method: "rpc.discover"}, nil)
	if err != nil {
		panic(err)
	}
	var doc openrpc.Doc
	if err := json.Unmarshal(res.(json.RawMessage), &doc); err != nil {
		panic(err)
	}
	fmt.Println(doc.OpenRPC, doc.Info.Title, len(doc.Methods), "methods")
	b, _ := json.MarshalIndent(doc.Methods[0], "", "  ")
	fmt.Println(string(b))
	fmt.Println(doc.Methods[1].Name, doc.Methods[1].Direction, doc.Methods[1].Result == nil)
	// Output:
	// 1.3.2 cursor 2 methods
	// {
	//   "name": "move",
	//   "summary": "Moves the cursor.",
	//   "paramStructure": "either",
	//   "params": [
	//     {
	//       "name": "x",
	//       "required": true,
	//       "schema": {
	//         "type": "number"
	//       }
	//     },
	//     {
	//       "name": "y",
	//       "required": true,
	//       "schema": {
	//         "type": "number"
	//       }
	//     },
	//     {
	//       "name": "label",
	//       "schema": {
	//         "type": [
	//           "null",
	//           "string"
	//         ]
	//       }
	//     }
	//   ],
	//   "result": {
	//     "name": "result",
	//     "schema": {
	//       "type": "boolean"
	//     }
	//   },
	//   "errors": [
	//     {
	//       "code": 409,
	//       "message": "busy"
	//     }
	//   ],
	//   "x-wsrpc-direction": "server"
	// }
	// moved client true
}
