package openrpc

import (
	"encoding"
	"encoding/json"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

// This file turns Go types into JSON Schemas: jsonschema.ForType does the
// walk, with schemas of our own for the types whose JSON encoding/json
// does not derive from their structure, and the core's rule for which
// struct fields are required applied afterwards.

// anySchema returns the schema that accepts every value ({}, written as
// true).
func anySchema() *jsonschema.Schema { return &jsonschema.Schema{} }

// schemaOf returns the JSON Schema of the values of t as encoding/json
// writes and reads them. A nil t (a type the table does not know) gets
// anySchema. A type jsonschema-go cannot describe (a recursive type, a
// channel, a func, a map whose keys are neither strings nor
// TextMarshalers) gets anySchema and the error.
func schemaOf(t reflect.Type) (*jsonschema.Schema, error) {
	if t == nil {
		return anySchema(), nil
	}
	own := map[reflect.Type]*jsonschema.Schema{}
	ownSchemas(t, own, map[reflect.Type]bool{})
	s, err := jsonschema.ForType(t, &jsonschema.ForOptions{TypeSchemas: own})
	if err != nil {
		return anySchema(), err
	}
	fixup(t, s, own)
	return s, nil
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// known are the types that implement json.Marshaler and that
// jsonschema-go describes well itself: left to it.
var known = map[reflect.Type]bool{
	reflect.TypeFor[big.Int]():   true,
	reflect.TypeFor[big.Rat]():   true,
	reflect.TypeFor[big.Float](): true,
}

// ownSchemas records in own the schemas of the types reachable from t
// that jsonschema-go would describe by their Go structure while
// encoding/json does not encode them so:
//
//   - time.Time: a string in RFC 3339 format ("date-time");
//   - a json.Marshaler or json.Unmarshaler (json.RawMessage among them):
//     its methods decide, so any value;
//   - an encoding.TextMarshaler: a string;
//   - a slice of bytes: a base64 string, or null for a nil slice.
func ownSchemas(t reflect.Type, own map[reflect.Type]*jsonschema.Schema, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if seen[t] {
		return
	}
	seen[t] = true
	pt := reflect.PointerTo(t)
	switch {
	case known[t]:
		return
	case t == reflect.TypeFor[time.Time]():
		own[t] = &jsonschema.Schema{Type: "string", Format: "date-time"}
		return
	case pt.Implements(jsonMarshaler) || pt.Implements(jsonUnmarshaler):
		own[t] = anySchema()
		return
	case pt.Implements(textMarshaler):
		own[t] = &jsonschema.Schema{Type: "string"}
		return
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 &&
		!reflect.PointerTo(t.Elem()).Implements(jsonMarshaler) && !reflect.PointerTo(t.Elem()).Implements(textMarshaler):
		own[t] = &jsonschema.Schema{Types: []string{"null", "string"}, ContentEncoding: "base64"}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for _, f := range reflect.VisibleFields(t) {
			if f.IsExported() && !f.Anonymous {
				ownSchemas(f.Type, own, seen)
			}
		}
	case reflect.Slice, reflect.Array:
		ownSchemas(t.Elem(), own, seen)
	case reflect.Map:
		ownSchemas(t.Key(), own, seen)
		ownSchemas(t.Elem(), own, seen)
	}
}

// fixup walks s, the schema of t, beside t:
//
//   - the fields of nested structs are required as the core requires the
//     arguments of a struct's params (see wsrpc.Register): not when a
//     pointer, omitempty or omitzero in the json tag, or
//     `wsrpc:"optional"`, where jsonschema-go looks at the json tag only;
//   - a schema of own behind a pointer that accepts anything stays so
//     (jsonschema-go narrows {} to {"type": ["null"]} there).
func fixup(t reflect.Type, s *jsonschema.Schema, own map[reflect.Type]*jsonschema.Schema) {
	if s == nil {
		return
	}
	if slices.Equal(s.Types, []string{"null"}) {
		s.Types = nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if own[t] != nil {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := map[string]reflect.StructField{}
		for _, f := range reflect.VisibleFields(t) {
			if name, ok := jsonName(f); ok {
				fields[name] = f // the last of a name wins, as in jsonschema-go
			}
		}
		s.Required = slices.DeleteFunc(s.Required, func(name string) bool {
			f := fields[name]
			return f.Type.Kind() == reflect.Pointer || f.Tag.Get("wsrpc") == "optional"
		})
		if len(s.Required) == 0 {
			s.Required = nil
		}
		for name, ps := range s.Properties {
			if f, ok := fields[name]; ok {
				fixup(f.Type, ps, own)
			}
		}
	case reflect.Slice, reflect.Array:
		fixup(t.Elem(), s.Items, own)
	case reflect.Map:
		if as := s.AdditionalProperties; as != nil {
			fixup(t.Elem(), as, own)
		}
	}
}

// jsonName returns the name encoding/json gives the field f, and false
// when it leaves f out (unexported, embedded, or tagged "-").
func jsonName(f reflect.StructField) (string, bool) {
	if !f.IsExported() || f.Anonymous {
		return "", false
	}
	tag, ok := f.Tag.Lookup("json")
	if !ok {
		return f.Name, true
	}
	name, _, found := strings.Cut(tag, ",")
	switch {
	case name == "-" && !found:
		return "", false
	case name == "":
		return f.Name, true
	}
	return name, true
}
