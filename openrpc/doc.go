// Package openrpc serves rpc.discover for a wsrpc method table: an OpenRPC
// document (https://spec.open-rpc.org, version 1.3.2) built from what the
// table knows of its methods (wsrpc.Methods.Describe).
//
//	openrpc.Serve(methods, openrpc.Info{Title: "shop", Version: "1.4.0"})
//
// [Serve] registers the handler; [Document] returns the same document as a
// value, for a test or a file. It is a module of its own, so that the
// wsrpc module does not depend on a JSON Schema library.
//
// # The document
//
// "openrpc" is [Version]; "info" is the title, version and description of
// [Info], and "servers" its Servers. "methods" lists every method the
// table serves and every one declared with Methods.Calls, sorted by name
// (a name both served and called: the served one first), so that the
// document is the same from one build to the next. rpc.discover itself is
// not listed, nor a Fallback. Each method has:
//
//   - "name", and "summary" when its descriptor has one (Method.Doc);
//   - "paramStructure": "by-name" (a map), "by-position" (a slice, an
//     array or a single value) or "either" (a struct), as Register decodes
//     them; absent when unknown (Handle, HandleRaw);
//   - "params": for a struct, one content descriptor per field, in
//     positional order, "required" as Register requires it (not a pointer,
//     no omitempty or omitzero, no `wsrpc:"optional"`); for a slice or a
//     map, one descriptor "args" for each element, marked variadic (below);
//     for an array of n, n optional descriptors "arg0"...; for any other
//     value, one required descriptor "arg" (sent as a one-element array);
//     for params the table does not know (Handle, HandleRaw,
//     json.RawMessage, an interface, a json.Unmarshaler), one optional
//     descriptor "params" for the whole params;
//   - "result": the schema of the result type; any value (the schema
//     true) when unknown (Handle, HandleRaw, an R of any). A notification
//     (NewNotification) has no result: OpenRPC reads a method without one
//     as one that is only notified;
//   - "errors": those its descriptor declares (Method.Errors): code,
//     message, data;
//   - "x-wsrpc-direction" (below).
//
// # Schemas
//
// Each schema is a JSON Schema of the Go type, inferred by
// github.com/google/jsonschema-go (jsonschema.ForType), as encoding/json
// reads and writes its values: properties named by json tags, structs
// closed to other properties (additionalProperties false), nil slices and
// pointers as null, a "jsonschema" field tag as the property's
// description. The fields of nested structs are required by the same rule
// as the arguments of the params, though Register checks the arguments
// only (encoding/json leaves a missing nested field zero). A few types get schemas of their own:
// time.Time a date-time string, a []byte a base64 string, an
// encoding.TextMarshaler a string, and any other json.Marshaler or
// json.Unmarshaler (json.RawMessage among them) any value, since its
// methods decide. A type with no JSON Schema (a recursive type, a
// channel, a func, a map whose keys are neither strings nor
// TextMarshalers) is described as any value; Document reports it.
//
// # Extensions
//
// OpenRPC lets a document carry fields whose names begin with "x-". This
// package adds these:
//
//   - "x-wsrpc-direction" ([DirectionField]) on every method: "server" for
//     a method the side that answered rpc.discover serves, "client" for
//     one it calls on the other side (declared with Methods.Calls), which
//     the other side must serve: a server's callbacks and notifications
//     to its clients. Tools that do not know the field take every method
//     for a server's. A name both served and called is listed twice, once
//     in each direction, though OpenRPC asks for unique names.
//   - "x-wsrpc-variadic": true ([VariadicField]) on the last params
//     descriptor of a slice or map: it stands for any number of params of
//     its schema, the rest of the array or any names.
//   - "x-wsrpc-stream": true ([StreamField]) on a stream (wsrpc.NewStream):
//     its result is the subscription id, a string, and
//     "x-wsrpc-stream-values" ([StreamValuesField]) is the content
//     descriptor of the values that follow as $/stream.next
//     notifications.
//
// # Serving
//
// Serve registers rpc.discover with Methods.Discover, so the table's
// middleware and guards apply to it as to any method: a table guarded by
// RequireIdentity refuses the document to callers without one. The
// document is encoded on the first call and kept; each call compares the
// table's Describe output with the one the document was built from, and
// builds it again only when it has changed (a method registered while
// serving).
package openrpc

// A map of the package:
//
//	openrpc.go  the document's types, Document (MethodInfo to methods and
//	            content descriptors), Serve and its cache
//	schema.go   Go types to JSON Schemas: jsonschema.ForType with schemas
//	            of our own for some types, then the core's required rule
