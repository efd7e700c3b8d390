module github.com/wsrpc/wsrpc/examples/server

go 1.25.0

require (
	github.com/wsrpc/wsrpc v0.0.0
	github.com/wsrpc/wsrpc/openrpc v0.0.0
)

require (
	github.com/coder/websocket v1.8.14 // indirect
	github.com/google/jsonschema-go v0.4.3 // indirect
)

replace (
	github.com/wsrpc/wsrpc => ../..
	github.com/wsrpc/wsrpc/openrpc => ../../openrpc
)
