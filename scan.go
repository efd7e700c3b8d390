package wsrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// This file is the JSON scanner: it validates JSON (syntax, UTF-8, nesting
// depth) in one pass and finds where values end, without decoding
// anything. wire.go applies the JSON-RPC envelope's rules on top of it;
// values.go decodes the basic values handlers take.

// maxDepth bounds nesting, as encoding/json does (at most maxDepth levels),
// so that no message can exhaust the stack of the goroutine that scans it.
const maxDepth = 10000

var errSyntax = errors.New("invalid JSON")

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue validates the JSON value at b[i] and returns the index after it.
func scanValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		end, _, err := scanString(b, i)
		return end, err
	case c == '{':
		if depth >= maxDepth {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return 0, errSyntax
			}
			var err error
			if i, _, err = scanString(b, i); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) || b[i] != ':' {
				return 0, errSyntax
			}
			if i, err = scanValue(b, skipSpace(b, i+1), depth+1); err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipSpace(b, i+1)
		}
	case c == '[':
		if depth >= maxDepth {
			return 0, errSyntax
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == '-') {
				i, err = scanNumber(b, i) // the common element, without the dispatch
			} else {
				i, err = scanValue(b, i, depth+1)
			}
			if err != nil {
				return 0, err
			}
			i = skipSpace(b, i)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipSpace(b, i+1)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return 0, errSyntax
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

func scanNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, errSyntax
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return 0, errSyntax
		}
	}
	return i, nil
}

// scanString validates the string at b[i] (b[i] == '"'): escapes, control
// characters and UTF-8. It returns the index after the closing quote.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for {
		lim := min(len(b), i+longRun)
		if j := plainRun(b[:lim], i); j < lim || lim == len(b) {
			i = j
		} else {
			// A long string, checked a chunk at a time: the runtime's
			// vectorised byte search finds its end and its escapes much
			// faster than plainRun can.
			run := b[i:chunkEnd(b, i)]
			if q := bytes.IndexByte(run, '"'); q >= 0 {
				run = run[:q]
			}
			if bs := bytes.IndexByte(run, '\\'); bs >= 0 {
				run = run[:bs]
			}
			if plainText(run) {
				i += len(run)
			} else {
				i = plainRun(b, i) // the checks below say what is wrong
			}
		}
		if i >= len(b) {
			return 0, false, errSyntax
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return 0, false, errSyntax
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return 0, false, errSyntax
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return 0, false, errSyntax
					}
				}
				i += 6
			default:
				return 0, false, errSyntax
			}
		case c < 0x20:
			return 0, false, errSyntax
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, errSyntax
			}
			i += size
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validJSON reports whether b is exactly one JSON value, with optional
// surrounding white space.
func validJSON(b []byte) bool {
	i := skipSpace(b, 0)
	end, err := scanValue(b, i, 0)
	return err == nil && skipSpace(b, end) == len(b)
}

// splitArray returns the elements of the JSON array b, which must already be
// valid JSON, appending them to dst.
func splitArray(dst [][]byte, b []byte) [][]byte {
	eachElem(b, func(_ int, tok []byte) error {
		dst = append(dst, tok)
		return nil
	})
	return dst
}

// eachElem calls f with each element of the JSON array arr, stopping at the
// first error f returns. arr must already be valid JSON: elements are found
// with skipValue, which does not check them again.
func eachElem(arr []byte, f func(i int, tok []byte) error) error {
	i := skipSpace(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for n := 0; i < len(arr); n++ {
		end := skipValue(arr, i)
		if end == i {
			return errParamsShape // not valid JSON after all
		}
		if err := f(n, arr[i:end]); err != nil {
			return err
		}
		i = skipSpace(arr, end)
		if i >= len(arr) || arr[i] != ',' {
			return nil
		}
		i = skipSpace(arr, i+1)
	}
	return nil
}

// skipValue returns the index after the JSON value at b[i], which the
// scanner has already validated: it only follows strings and brackets, at
// the speed of bytes.IndexByte. On invalid input it still ends, within b,
// but its answer means nothing.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		c := b[i]
		switch c {
		case '"':
			i = skipString(b, i)
		case '[', '{':
			depth++
			i++
		case ']', '}':
			if depth == 0 {
				return i // the end of the array holding a scalar
			}
			depth--
			i++
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
			i++
		default:
			i++
		}
		if depth == 0 && (c == '"' || c == ']' || c == '}') {
			return i
		}
	}
	return len(b)
}

// skipString returns the index after the valid JSON string at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			break
		}
		q += j
		// The quote ends the string unless an odd number of backslashes
		// escape it.
		k := q
		for k > j && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
	return len(b)
}

// eachMember calls f with the key of each member of the JSON object obj,
// which must already be valid JSON, stopping at the first error f returns.
// A key with escapes is unescaped first; f must not keep key.
func eachMember(obj []byte, f func(key []byte) error) error {
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		end := skipString(obj, i)
		key := obj[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(obj[i:end], &k) != nil {
				return errParamsShape
			}
			key = []byte(k)
		}
		if err := f(key); err != nil {
			return err
		}
		i = skipSpace(obj, end) // at ':'
		i = skipSpace(obj, i+1) // at the value
		i = skipSpace(obj, skipValue(obj, i))
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
		i = skipSpace(obj, i+1)
	}
	return nil
}
