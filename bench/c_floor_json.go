package main

// floor-json: the least work any JSON-RPC implementation must do on top of
// floor-ws, written by hand for the two shapes of message the seq and echo
// scenarios send, over the same coder/websocket calls and the same
// lock-step client. It is not a library: it knows where every member is.
// What it does that floor-ws does not:
//
//   - the client checks that the string it sends needs no escaping (and is
//     valid UTF-8) before copying it into the request;
//   - the server checks the request's members, reads its id, and for echo
//     checks the string param's bytes (no escapes or control characters,
//     valid UTF-8) and copies them into a response of its own; for sum it
//     parses the two numbers and formats their sum;
//   - the client checks the response's id and builds the result: the echoed
//     string (a copy, as any decoder must make) or the number.
//
// Any real implementation does at least this, and more (members in any
// order, escapes, a method table, errors), so where it uses the transport
// as floor-ws does (small messages), its ratio to floor-ws is a lower
// bound. Not for large ones: its checks are simple passes over the whole
// string, and a library may write large frames in bigger pieces than
// coder/websocket's 4 KiB (wsrpc does). It supports Sum and Echo only.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"strconv"
	"unicode/utf8"
)

func init() { register(2, floorJSONContender{}) }

type floorJSONContender struct{}

func (floorJSONContender) Name() string { return "floor-json" }

func (f floorJSONContender) Listen(svc *Service) (Server, error) {
	s := &floorJSONServer{svc: svc}
	h, err := serveLoopback(http.HandlerFunc(s.handle))
	if err != nil {
		return nil, err
	}
	s.http = h
	return s, nil
}

type floorJSONServer struct {
	svc   *Service
	http  *loopbackHTTP
	conns closerSet
}

var errFloorJSON = errors.New("floor-json: unexpected message")

func (s *floorJSONServer) handle(w http.ResponseWriter, r *http.Request) {
	c, err := coderTransport{}.Accept(w, r)
	if err != nil {
		return
	}
	s.conns.add(c, func() { c.Close() })
	defer func() {
		s.conns.remove(c)
		c.Close()
	}()
	ctx := context.Background()
	var in, out []byte
	for {
		if in, err = c.ReadMsg(ctx, in); err != nil {
			return
		}
		if out, err = s.answer(out[:0], in); err != nil {
			return
		}
		if c.WriteMsg(ctx, out) != nil {
			return
		}
	}
}

const (
	fjEcho   = `,"method":"echo","params":[`
	fjSum    = `,"method":"sum","params":[`
	fjResult = `,"result":`
)

// answer appends to out the response to the request in.
func (s *floorJSONServer) answer(out, in []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(in, []byte(jReqPrefix))
	if !ok {
		return out, errFloorJSON
	}
	id, rest, ok := fjUint(rest)
	if !ok {
		return out, errFloorJSON
	}
	out = append(out, jReqPrefix...)
	out = strconv.AppendUint(out, id, 10)
	out = append(out, fjResult...)
	if p, ok := bytes.CutPrefix(rest, []byte(fjEcho)); ok {
		str, rest, ok := fjString(p)
		if !ok || string(rest) != "]}" {
			return out, errFloorJSON
		}
		out = append(out, '"')
		out = append(out, str...)
		return append(out, `"}`...), nil
	}
	if p, ok := bytes.CutPrefix(rest, []byte(fjSum)); ok {
		a, p, ok1 := fjUint(p)
		p, ok2 := bytes.CutPrefix(p, []byte(","))
		b, p, ok3 := fjUint(p)
		if !ok1 || !ok2 || !ok3 || string(p) != "]}" {
			return out, errFloorJSON
		}
		out = strconv.AppendInt(out, int64(s.svc.Sum(int(a), int(b))), 10)
		return append(out, '}'), nil
	}
	return out, errFloorJSON
}

// fjUint reads the unsigned integer b starts with.
func fjUint(b []byte) (uint64, []byte, bool) {
	var n uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n, b[i:], i > 0
}

// fjString reads the JSON string b starts with, which must need no
// unescaping, and returns its contents and what follows it.
func fjString(b []byte) (str, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 {
		return nil, nil, false
	}
	str = b[1 : 1+end]
	if !fjPlain(str) {
		return nil, nil, false
	}
	return str, b[2+end:], true
}

// fjPlain reports whether s can be a JSON string's contents as it is: no
// quote, backslash or control character, and valid UTF-8. It looks at
// eight bytes at a time, as a good decoder does.
func fjPlain(s []byte) bool {
	if bytes.IndexByte(s, '"') >= 0 || bytes.IndexByte(s, '\\') >= 0 {
		return false
	}
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	b := s
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// A byte below 0x20 borrows into its high bit (exact while no
		// byte has it set; one that has it goes to utf8.Valid below).
		if (w-lsb*0x20)&^w&msb != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return false
		}
	}
	return utf8.Valid(s)
}

func (s *floorJSONServer) Close() error {
	err := s.http.Close()
	s.conns.closeAll()
	return err
}

func (s *floorJSONServer) Dial(ctx context.Context, opt DialOptions) (Conn, error) {
	if opt.Concurrent {
		return nil, ErrUnsupported
	}
	c, err := coderTransport{}.Dial(ctx, s.http.URL)
	if err != nil {
		return nil, err
	}
	return &floorJSONConn{c: c}, nil
}

// floorJSONConn is the lock-step client.
type floorJSONConn struct {
	c          msgConn
	id         uint64
	wbuf, rbuf []byte
}

// roundTrip sends wbuf and returns the result member of the answer.
func (f *floorJSONConn) roundTrip(ctx context.Context) ([]byte, error) {
	if err := f.c.WriteMsg(ctx, f.wbuf); err != nil {
		return nil, err
	}
	var err error
	if f.rbuf, err = f.c.ReadMsg(ctx, f.rbuf); err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(f.rbuf, []byte(jReqPrefix))
	if !ok {
		return nil, errFloorJSON
	}
	id, rest, ok := fjUint(rest)
	if !ok || id != f.id {
		return nil, errFloorJSON
	}
	res, ok := bytes.CutPrefix(rest, []byte(fjResult))
	if !ok || len(res) == 0 || res[len(res)-1] != '}' {
		return nil, errFloorJSON
	}
	return res[:len(res)-1], nil
}

func (f *floorJSONConn) Sum(ctx context.Context, a, b int) (int, error) {
	f.id++
	f.wbuf = appendSum(f.wbuf[:0], f.id, a, b)
	res, err := f.roundTrip(ctx)
	if err != nil {
		return 0, err
	}
	n, rest, ok := fjUint(res)
	if !ok || len(rest) != 0 {
		return 0, errFloorJSON
	}
	return int(n), nil
}

func (f *floorJSONConn) Echo(ctx context.Context, s string) (string, error) {
	if !fjPlain([]byte(s)) {
		return "", errFloorJSON // the harness echoes only strings that need no escaping
	}
	f.id++
	f.wbuf = appendEcho(f.wbuf[:0], f.id, s)
	res, err := f.roundTrip(ctx)
	if err != nil {
		return "", err
	}
	str, rest, ok := fjString(res)
	if !ok || len(rest) != 0 {
		return "", errFloorJSON
	}
	return string(str), nil
}

func (f *floorJSONConn) Close() error { return f.c.Close() }
