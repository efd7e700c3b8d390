module github.com/wsrpc/wsrpc/openrpc

go 1.25.0

require (
	github.com/google/jsonschema-go v0.4.3
	github.com/santhosh-tekuri/jsonschema/v6 v6.0.3
	github.com/wsrpc/wsrpc v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/coder/websocket v1.8.14 // indirect
	golang.org/x/text v0.14.0 // indirect
)

replace github.com/wsrpc/wsrpc => ../
