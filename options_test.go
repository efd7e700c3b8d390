package wsrpc

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRoleOptionsReachConfig sets every field of every role's options and
// checks that each one arrives in the flat options the peers are built
// from: a field added to a role and forgotten in its conversion fails here.
func TestRoleOptionsReachConfig(t *testing.T) {
	renamed := map[string]string{"Header": "HTTPHeader", "Client": "HTTPClient"}
	for _, role := range []interface{ options() *options }{
		&PeerOptions{}, &DialOptions{}, &AcceptOptions{}, &ServerOptions{}, &HTTPClientOptions{},
	} {
		name := reflect.TypeOf(role).Elem().Name()
		require.Nil(t, reflect.Zero(reflect.TypeOf(role)).Interface().(interface{ options() *options }).options(), "%s: nil means defaults", name)
		var want []string
		v := reflect.ValueOf(role).Elem()
		for i := range v.NumField() {
			f, fv := v.Type().Field(i), v.Field(i)
			if f.Name == "Limits" {
				for j := range fv.NumField() {
					fillNonZero(t, fv.Field(j))
					want = append(want, fv.Type().Field(j).Name)
				}
				continue
			}
			fillNonZero(t, fv)
			want = append(want, cmpOr(renamed[f.Name], f.Name))
		}
		got := reflect.ValueOf(role.options()).Elem()
		for _, field := range want {
			require.False(t, got.FieldByName(field).IsZero(), "%s: field %s is lost on the way to config", name, field)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fillNonZero sets v to some non-zero value of its type.
func fillNonZero(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		v.SetInt(3)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.String:
		v.SetString("x")
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
	case reflect.Func:
		v.Set(reflect.MakeFunc(v.Type(), func([]reflect.Value) []reflect.Value { return nil }))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	case reflect.Interface:
		for _, x := range []any{&durationCodec{}, &recorder{}, &memBroker{}} {
			if reflect.TypeOf(x).Implements(v.Type()) {
				v.Set(reflect.ValueOf(x))
				return
			}
		}
		t.Fatalf("no non-zero value for %s", v.Type())
	default:
		t.Fatalf("no non-zero value for %s", v.Type())
	}
}
