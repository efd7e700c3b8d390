package openrpc

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	validator "github.com/santhosh-tekuri/jsonschema/v6"
)

// The OpenRPC meta-schema, and the JSON Schema meta-schema it refers to
// for every "schema" of a document: see testdata/README.md.
const (
	openrpcMetaURL    = "https://meta.open-rpc.org/"
	jsonSchemaMetaURL = "https://meta.json-schema.tools/"
)

// metaSchema compiles the OpenRPC meta-schema once.
var metaSchema = sync.OnceValues(func() (*validator.Schema, error) {
	c := validator.NewCompiler()
	c.DefaultDraft(validator.Draft7)
	c.AssertFormat()
	for url, file := range map[string]string{
		openrpcMetaURL:    "openrpc-meta-schema.json",
		jsonSchemaMetaURL: "json-schema-tools-meta-schema.json",
	} {
		f, err := os.Open(filepath.Join("testdata", file))
		if err != nil {
			return nil, err
		}
		doc, err := validator.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		// Both name as their meta-schema https://meta.json-schema.tools/,
		// the draft-07 meta-schema with titles added, which is not
		// published as a file of its own (and the second is that very
		// URL): draft-07's own stands in for it.
		doc.(map[string]any)["$schema"] = "http://json-schema.org/draft-07/schema#"
		if err := c.AddResource(url, doc); err != nil {
			return nil, err
		}
	}
	// The OpenRPC meta-schema refers to it without the final slash.
	alias := map[string]any{"$schema": "http://json-schema.org/draft-07/schema#", "$ref": jsonSchemaMetaURL}
	if err := c.AddResource(strings.TrimSuffix(jsonSchemaMetaURL, "/"), alias); err != nil {
		return nil, err
	}
	return c.Compile(openrpcMetaURL)
})

// validate fails t unless doc (JSON) is a valid OpenRPC document.
func validate(t *testing.T, doc []byte) {
	t.Helper()
	if err := checkDocument(doc); err != nil {
		t.Fatalf("not a valid OpenRPC document: %v\n%s", err, doc)
	}
}

// checkDocument validates doc (JSON) against the OpenRPC meta-schema.
func checkDocument(doc []byte) error {
	sch, err := metaSchema()
	if err != nil {
		return err
	}
	v, err := validator.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// TestMetaSchemaRejects checks that the validation can fail: documents
// broken in the document itself, in a method, in a content descriptor
// and inside a JSON Schema are refused.
func TestMetaSchemaRejects(t *testing.T) {
	t.Parallel()
	const good = `{"openrpc":"1.3.2","info":{"title":"t","version":"1"},"methods":[` +
		`{"name":"m","params":[{"name":"a","schema":{"type":"integer"}}],"result":{"name":"r","schema":true},"x-wsrpc-direction":"server"}]}`
	if err := checkDocument([]byte(good)); err != nil {
		t.Fatalf("a valid document: %v", err)
	}
	for name, bad := range map[string][2]string{
		"version":       {`"1.3.2"`, `"9.9.9"`},
		"no params":     {`"params":[{"name":"a","schema":{"type":"integer"}}],`, ``},
		"no name":       {`{"name":"a","schema"`, `{"schema"`},
		"schema type":   {`{"type":"integer"}`, `{"type":"int"}`},
		"schema form":   {`{"type":"integer"}`, `{"required":"a"}`},
		"extension":     {`"x-wsrpc-direction"`, `"wsrpc-direction"`},
		"info title":    {`"title":"t",`, ``},
		"method schema": {`"result":{"name":"r","schema":true}`, `"result":{"name":"r","schema":5}`},
	} {
		doc := strings.Replace(good, bad[0], bad[1], 1)
		if doc == good {
			t.Fatalf("%s: the replacement changed nothing", name)
		}
		if !json.Valid([]byte(doc)) {
			t.Fatalf("%s: not JSON: %s", name, doc)
		}
		if err := checkDocument([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}
