package weerpc_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wsrpc/wsrpc"
	"github.com/wsrpc/wsrpc/weerpc"
)

// call posts a weeRPC call and prints the answer.
func call(url, body string, cookies ...*http.Cookie) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	fmt.Print(string(answer))
}

// A method table served over weeRPC, as a Flask-RPC front end calls it.
func Example() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "add_numbers", func(_ context.Context, ns []float64) (float64, error) {
		var s float64
		for _, n := range ns {
			s += n
		}
		return s, nil
	})

	mux := http.NewServeMux()
	mux.Handle("/rpc", weerpc.NewHandler(&weerpc.Options{Methods: methods}))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	call(srv.URL+"/rpc", `{"weerpc": 1.1, "function": "add_numbers", "data": [1, 2, 3]}`)
	call(srv.URL+"/rpc", `{"wrpc": 1.0, "function": "add_numbers", "data": [1, 2, 3]}`)
	call(srv.URL+"/rpc", `{"weerpc": 1.1, "function": "subtract_numbers", "data": [1, 2, 3]}`)
	// Output:
	// {"weerpc":1.1,"ok":true,"message":"function 'add_numbers' succeeded","data":6}
	// {"wrpc":1.0,"ok":true,"message":"function 'add_numbers' succeeded","data":6}
	// {"weerpc":1.1,"ok":false,"message":"method not found: \"subtract_numbers\"","data":null}
}

// Flask-RPC's session_auth: a function for logged-in users only, the
// session kept in a cookie (a real one is signed or kept server-side).
func ExampleRequireSession() {
	methods := wsrpc.NewMethods()
	wsrpc.Register(methods, "secret", func(ctx context.Context, _ any) (string, error) {
		user, _ := weerpc.SessionFromContext(ctx).Get("user")
		return fmt.Sprintf("hello %v", user), nil
	}, wsrpc.Guarded(weerpc.RequireSession("logged_in", true)))

	h := weerpc.NewHandler(&weerpc.Options{
		Methods: methods,
		Session: func(r *http.Request) weerpc.Session {
			c, err := r.Cookie("user")
			if err != nil {
				return nil
			}
			return weerpc.Values{"logged_in": true, "user": c.Value}
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	call(srv.URL, `{"weerpc": 1.1, "function": "secret"}`)
	call(srv.URL, `{"weerpc": 1.1, "function": "secret"}`, &http.Cookie{Name: "user", Value: "ada"})
	// Output:
	// {"weerpc":1.1,"ok":false,"message":"unauthorized: no session","data":null}
	// {"weerpc":1.1,"ok":true,"message":"function 'secret' succeeded","data":"hello ada"}
}
