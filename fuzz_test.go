package wsrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; the f.Add seeds below are
// the essentials, kept in code so that they survive a corpus clean-up.

// ---- FuzzEnvelope ----

// FuzzEnvelope feeds arbitrary bytes to the scanner and to a live peer:
// nothing panics; validJSON agrees with encoding/json (which does not check
// UTF-8, so with json.Valid && utf8.Valid); parseObject agrees with
// validJSON and with encoding/json about the members it extracts; and no
// message, however malformed, closes the connection or goes unanswered by a
// valid JSON response. A message that is not UTF-8 is the exception: it
// closes the connection with 1007 (RFC 6455 §8.1), on a peer of its own.
func FuzzEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ok"}`,
		`{"jsonrpc":"2.0","id":"a\"b","method":"m","params":[1,{"x":null}]}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","method":"m"}`,
		`{"jsonrpc":"2.0","id":1,"Method":"m"}`,
		`{"jsonrpc":"2\u002e0","id":1,"method":"ok"}`,
		`{"jsonrpc":"2.0","id":1,"\u006dethod":"ok"}`,
		`{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":1}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ok"},{"jsonrpc":"2.0","method":"ok"},1]`,
		`[]`, `[1]`, `{}`, `null`, ``, ` `, `"\ud800"`, "\"\xff\"", `1e400`, `-0.0e-0`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		f.Add([]byte(s))
	}
	// A live peer, shared by every input.
	// Real time here: no slow methods, so that an input costs microseconds.
	r := rsNewRaw(&options{Methods: rsFuzzMethods(false), Limits: Limits{PingInterval: -1}}, 256)
	f.Cleanup(func() { r.p.Close() })
	var probe int
	f.Fuzz(func(t *testing.T, data []byte) {
		// The scanner, alone.
		want := json.Valid(data) && utf8.Valid(data)
		if got := validJSON(data); got != want {
			t.Fatalf("validJSON = %v, encoding/json says %v, for %q", got, want, data)
		}
		start := skipSpace(data, 0)
		end, err := scanValue(data, start, 0)
		if err == nil && (end > len(data) || end <= 0) {
			t.Fatalf("scanValue returned %d for %d bytes", end, len(data))
		}
		// skipValue agrees with the scanner on valid JSON, and on any
		// input stays within it.
		if start < len(data) {
			skip := skipValue(data, start)
			if want && skip != end {
				t.Fatalf("skipValue ends at %d, scanValue at %d, in %q", skip, end, data)
			}
			if skip < start || skip > len(data) {
				t.Fatalf("skipValue returned %d from %d for %d bytes", skip, start, len(data))
			}
		}
		if i := skipSpace(data, 0); i < len(data) && data[i] == '{' {
			checkParseCommon(t, data, i)
			var env envelope
			end, err := parseObject(data, i, &env)
			whole := err == nil && skipSpace(data, end) == len(data)
			if whole != want {
				t.Fatalf("parseObject accepts %v, validJSON %v, for %q", whole, want, data)
			}
			if whole && env.invalid == "" {
				rsCheckMembers(t, data, &env)
			}
		}
		for _, el := range func() [][]byte {
			if i := skipSpace(data, 0); want && i < len(data) && data[i] == '[' {
				return splitArray(nil, data[i:])
			}
			return nil
		}() {
			if !json.Valid(el) {
				t.Fatalf("splitArray returned %q, not a value", el)
			}
		}

		if !utf8.Valid(data) {
			rsExpect1007(t, data)
			return
		}
		probe++
		id := `"probe-` + strconv.Itoa(probe) + `"`
		r.send(t, string(data))
		r.send(t, `{"jsonrpc":"2.0","id":`+id+`,"method":"ok"}`)
		deadline := time.After(10 * time.Second)
		for {
			select {
			case m := <-r.end.in:
				if !json.Valid(m) || !validJSON(m) {
					t.Fatalf("invalid JSON sent: %q", m)
				}
				if bytes.Contains(m, []byte(`"id":`+id+`,"result"`)) {
					if err := r.p.Err(); err != nil {
						t.Fatalf("the connection closed: %v", err)
					}
					return
				}
			case <-deadline:
				t.Fatalf("no answer to the probe after %q", data)
			}
		}
	})
}

// rsExpect1007 sends data, which is not UTF-8, to a peer of its own, and
// checks that the peer closes the connection with status 1007.
func rsExpect1007(t *testing.T, data []byte) {
	r := rsNewRaw(&options{Methods: rsFuzzMethods(false), Limits: Limits{PingInterval: -1}}, 4)
	defer r.p.Close()
	r.send(t, string(data))
	<-r.end.shared.closed
	var ce websocket.CloseError
	if !errors.As(r.end.shared.err, &ce) || ce.Code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("after %q: closed with %v, want 1007", data, r.end.shared.err)
	}
}

// rsCheckMembers compares what parseObject extracted with encoding/json.
func rsCheckMembers(t *testing.T, data []byte, env *envelope) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("encoding/json refuses an object parseObject accepted: %v: %q", err, data)
	}
	for name, got := range map[string][]byte{
		"jsonrpc": env.version, "id": env.id, "method": env.method,
		"params": env.params, "result": env.result, "error": env.err,
	} {
		w, ok := m[name]
		if ok != (got != nil) || (ok && !bytes.Equal(w, got)) {
			t.Fatalf("member %q: parseObject %q, encoding/json %q, in %q", name, got, w, data)
		}
	}
	if env.method != nil && env.method[0] == '"' {
		var s string
		json.Unmarshal(env.method, &s)
		if env.methodName() != s {
			t.Fatalf("method name %q, encoding/json %q", env.methodName(), s)
		}
	}
}

// fuzzFeed is a stream the fuzzed peer serves: the values of its params.
var fuzzFeed = NewStream[[]int, int]("feed")

// rsFuzzMethods are the methods a fuzzed peer serves: quick ones, failing
// and panicking ones, and with slow, slow ones and ones calling back.
func rsFuzzMethods(slow bool) *Methods {
	m := NewMethods()
	m.Handle("ok", func(context.Context, *Request) (any, error) { return true, nil })
	m.Handle("echo", func(_ context.Context, req *Request) (any, error) {
		return json.RawMessage(append([]byte(nil), req.Params...)), nil
	})
	m.Handle("fail", func(context.Context, *Request) (any, error) {
		return nil, NewError(-1, "failed", []int{1})
	})
	m.Handle("plain.error", func(context.Context, *Request) (any, error) { return nil, errors.New("/secret") })
	m.Handle("panic", func(context.Context, *Request) (any, error) { panic("boom") })
	m.Handle("notify.back", func(ctx context.Context, _ *Request) (any, error) {
		return nil, PeerFromContext(ctx).Notify(ctx, "note", []int{1})
	})
	Register(m, "typed", func(_ context.Context, p struct {
		A int    `json:"a"`
		B string `json:"b"`
	}) (int, error) {
		return p.A + len(p.B), nil
	})
	fuzzFeed.Register(m, func(ctx context.Context, a []int, sink *Sink[int]) error {
		for i := range min(len(a), 8) {
			if err := sink.Send(ctx, a[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if !slow {
		return m
	}
	m.Handle("slow", func(ctx context.Context, _ *Request) (any, error) {
		tm := time.NewTimer(time.Second)
		defer tm.Stop()
		select {
		case <-tm.C:
			return "slept", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	m.Handle("call.back", func(ctx context.Context, _ *Request) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var res json.RawMessage
		err := PeerFromContext(ctx).Call(ctx, "x", nil, &res)
		return res, err
	})
	return m
}

// ---- FuzzResponseRouting ----

// FuzzResponseRouting drives complete, abandon and shutdown of a peer
// directly, with a random mix of responses to issued, unknown, repeated and
// wrongly typed ids, and checks against a model that each id is completed
// exactly once, by its first valid response, and each call signalled
// exactly once.
func FuzzResponseRouting(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 1, 0, 1, 2, 5, 6})
	f.Add([]byte{0, 3, 1, 1, 3, 0, 1, 1, 4, 0, 7, 2, 1, 2, 3, 0})
	f.Add([]byte{0, 0, 0, 1, 4, 1, 1, 0, 1, 1, 6, 0, 2})
	f.Add([]byte{0, 2, 5, 0, 5, 0, 5, 1, 5, 1, 2, 9, 2, 3, 2, 4, 2, 5, 2, 6, 2, 7, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a, _ := newPipe(1)
		p := newPeer(a, (&options{}).config(), nil, nil) // not started: no goroutine
		type idState struct {
			// expected outcome: "" pending, "r:<n>", "e:<code>", "closed",
			// "abandoned", "never" (issued after the close)
			want string
		}
		type rec struct {
			c     *call
			ids   []uint64
			dead  bool // abandoned: c was recycled
			early bool // issued after shutdown: never registered
		}
		var calls []*rec
		ids := map[uint64]*idState{}
		serial := 0
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return int(b)
		}
		pickID := func() uint64 {
			n := p.nextID.Load()
			if n == 0 {
				return 1
			}
			return 1 + uint64(next())%n
		}
		shutdown := func() {
			if p.shutdown(errors.New("fuzz: closed")) {
				for _, st := range ids {
					if st.want == "" {
						st.want = "closed"
					}
				}
			}
		}
		respond := func(raw string, id uint64, idOK bool, result bool) {
			serial++
			var msg string
			if result {
				msg = `{"jsonrpc":"2.0","result":` + strconv.Itoa(serial) + `,"id":` + raw + `}`
			} else {
				msg = `{ "id" : ` + raw + ` , "jsonrpc":"2.0","error":{"code":` + strconv.Itoa(-serial) + `,"message":"m"}}`
			}
			var env envelope
			end, err := parseObject([]byte(msg), 0, &env)
			if err != nil || end != len(msg) || env.invalid != "" || env.isRequest() {
				t.Fatalf("bad test message %s: %v %q", msg, err, env.invalid)
			}
			p.complete(&env, nil)
			if st := ids[id]; idOK && st != nil && st.want == "" {
				if result {
					st.want = "r:" + strconv.Itoa(serial)
				} else {
					st.want = "e:" + strconv.Itoa(-serial)
				}
			}
		}
		for len(ops) > 0 {
			switch next() % 8 {
			case 0: // issue a call of 1..4 ids
				k := 1 + next()%4
				c := p.getCall(k)
				c.firstID = p.nextID.Add(uint64(k)) - uint64(k) + 1
				r := &rec{c: c}
				p.mu.Lock()
				closing := p.closing
				for i := range k {
					id := c.firstID + uint64(i)
					r.ids = append(r.ids, id)
					st := &idState{}
					if closing {
						st.want = "never"
					}
					ids[id] = st
				}
				if !closing {
					p.addPending(c)
				}
				p.mu.Unlock()
				r.early = closing
				calls = append(calls, r)
			case 1: // result for an issued id
				id := pickID()
				respond(strconv.FormatUint(id, 10), id, true, true)
			case 2: // error for an issued id
				id := pickID()
				respond(strconv.FormatUint(id, 10), id, true, false)
			case 3: // the same id, wrongly typed or spelled
				id := pickID()
				s := strconv.FormatUint(id, 10)
				variants := []string{`"` + s + `"`, s + `.0`, s + `e0`, `-` + s, s + `E+0`, `null`, `"` + s + `.0"`, s + `.5`}
				respond(variants[next()%len(variants)], id, false, next()%2 == 0)
			case 4: // an id never issued
				n := p.nextID.Load() + 1 + uint64(next())
				respond(strconv.FormatUint(n, 10), n, false, true)
			case 5: // the caller gives up
				if len(calls) == 0 {
					continue
				}
				r := calls[next()%len(calls)]
				if r.dead || r.early {
					continue
				}
				p.abandon(r.c, true)
				r.dead = true
				for _, id := range r.ids {
					if ids[id].want == "" {
						ids[id].want = "abandoned"
					}
				}
			case 6: // the peer closes
				shutdown()
			case 7: // id 0 and the largest ids
				respond("0", 0, false, true)
				respond("18446744073709551615", 0, false, true)
			}
		}
		shutdown()

		for ci, r := range calls {
			if r.dead || r.early {
				continue
			}
			c := r.c
			if n := c.remaining.Load(); n != 0 {
				t.Fatalf("call %d: remaining %d after every id was completed", ci, n)
			}
			select {
			case <-c.done:
			default:
				t.Fatalf("call %d: completed but never signalled", ci)
			}
			select {
			case <-c.done:
				t.Fatalf("call %d: signalled twice", ci)
			default:
			}
			for i, id := range r.ids {
				st := ids[id]
				s := c.slots[i]
				var got string
				var ce *closedError
				var e *Error
				switch {
				case errors.As(s.err, &ce):
					got = "closed"
				case errors.As(s.err, &e):
					got = "e:" + strconv.FormatInt(e.Code, 10)
				case s.err == nil:
					got = "r:" + string(c.result(i))
				default:
					got = s.err.Error()
				}
				if got != st.want {
					t.Fatalf("id %d: outcome %s, want %s", id, got, st.want)
				}
			}
		}
	})
}

// ---- FuzzPeerTranscript ----

// FuzzPeerTranscript feeds a sequence of messages (the input split at
// newlines) to a peer over an in-memory pipe, inside a synctest bubble:
// nothing panics or hangs (the bubble would deadlock), the connection stays
// up, everything the peer sends is valid JSON, and every request with a
// valid id gets exactly one response, checked against a model built with
// encoding/json. Messages that are not UTF-8 are left out.
func FuzzPeerTranscript(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ok"}` + "\n" + `{"jsonrpc":"2.0","id":2,"method":"echo","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":1,"method":"slow"}` + "\n" + `{"jsonrpc":"2.0","id":1,"method":"ok"}` + "\n" + `{"jsonrpc":"2.0","id":1,"method":"slow"}`,
		`[{"jsonrpc":"2.0","id":"a","method":"ok"},{"jsonrpc":"2.0","method":"ok"},{"jsonrpc":"2.0","id":"b","method":"nope"},5,[]]`,
		`{"jsonrpc":"2.0","id":7,"method":"call.back"}` + "\n" + `{"jsonrpc":"2.0","id":1,"result":"answer"}`,
		`{"jsonrpc":"2.0","id":null,"method":"notify.back"}` + "\n" + `{"jsonrpc":"2.0","method":"slow"}` + "\n" + `{"jsonrpc":"2.0","id":-1.5e3,"method":"panic"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ok","method":"ok"}` + "\n" + `{"jsonrpc":"2.0","id":1,"Method":"ok"}` + "\n" + `{"jsonrpc":"2\u002e0","id":3,"method":"ok"}`,
		`{"jsonrpc":"2.0","id":{},"method":"ok"}` + "\n" + `[]` + "\n" + `[` + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ok"},`, 12) + `1]`,
		`{"jsonrpc":"2.0","id":"x","method":"typed","params":{"a":"b"}}` + "\n" + `{"jsonrpc":"2.0","id":"y","method":"typed","params":[1,"two"]}`,
		"\xff\n\n{\n[\n\"\\ud800\"",
		`{"jsonrpc":"2.0","id":1,"method":"slow"}` + "\n" + `{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}` + "\n" +
			`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"x"}}` + "\n" + `{"jsonrpc":"2.0","method":"$/cancelRequest","params":5}` + "\n" +
			`[{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}},{"jsonrpc":"2.0","id":1,"method":"ok"}]`,
		`{"jsonrpc":"2.0","id":2,"method":"feed","params":[1,2,3]}` + "\n" + `{"jsonrpc":"2.0","method":"$/stream.credit","params":{"id":"s1","n":2,"bytes":100}}` + "\n" +
			`{"jsonrpc":"2.0","method":"$/stream.credit","params":{"id":"s1","n":-1}}` + "\n" + `{"jsonrpc":"2.0","method":"$/stream.cancel","params":{"id":"s1"}}` + "\n" +
			`{"jsonrpc":"2.0","method":"$/stream.next","params":{"id":"s9","value":1}}` + "\n" + `{"jsonrpc":"2.0","method":"$/stream.end","params":{"id":"s9","error":{"code":1}}}` + "\n" +
			`{"jsonrpc":"2.0","method":"$/stream.credit","params":[1]}` + "\n" + `{"jsonrpc":"2.0","id":3,"method":"$/stream.next"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var msgs [][]byte
		for _, m := range bytes.Split(data, []byte("\n")) {
			// A message that is not UTF-8 closes the connection (see
			// FuzzEnvelope); the transcript keeps it up.
			if utf8.Valid(m) && len(msgs) < 64 {
				msgs = append(msgs, m)
			}
		}
		expect := map[string]int{} // raw id -> requests that must be answered
		allow := map[string]int{}  // raw id -> objects that may be answered
		for _, m := range msgs {
			rsModelMessage(m, transcriptMaxBatch, expect, allow)
		}
		var got [][]byte
		synctest.Test(t, func(t *testing.T) {
			r := rsNewRaw(&options{Methods: rsFuzzMethods(true), CancelMethod: LSPCancel, Limits: Limits{MaxHandlers: 3, MaxQueued: 4, MaxBatch: transcriptMaxBatch}}, 256)
			var mu sync.Mutex
			read := make(chan struct{})
			go func() {
				defer close(read)
				for {
					m, err := r.end.readMessage(noReserve)
					if err != nil {
						return
					}
					mu.Lock()
					got = append(got, m.b)
					mu.Unlock()
				}
			}()
			for _, m := range msgs {
				if err := r.end.writeMessage(m); err != nil {
					t.Fatalf("write: %v", err)
				}
			}
			time.Sleep(time.Minute) // fake time: every slow handler and callback is done
			synctest.Wait()
			if err := r.p.Err(); err != nil {
				t.Fatalf("the connection closed: %v", err)
			}
			r.p.Close()
			<-read
		})
		answered := map[string]int{}
		refused := map[string]int{} // answered as invalid, for another reason than a duplicate id
		for _, m := range got {
			if !json.Valid(m) || !validJSON(m) {
				t.Fatalf("invalid JSON sent: %q", m)
			}
			var items []json.RawMessage
			if m[0] == '[' {
				if err := json.Unmarshal(m, &items); err != nil {
					t.Fatal(err)
				}
			} else {
				items = []json.RawMessage{m}
			}
			for _, it := range items {
				var x struct {
					ID     json.RawMessage `json:"id"`
					Method *string         `json:"method"`
					Error  *rsWireError    `json:"error"`
				}
				if err := json.Unmarshal(it, &x); err != nil {
					t.Fatalf("%v: %q", err, it)
				}
				if x.Method == nil { // a response, not the peer's own call
					answered[string(x.ID)]++
					if e := x.Error; e != nil && (e.Code == CodeParseError || e.Code == CodeInvalidRequest && !strings.Contains(e.Message, "already in use")) {
						refused[string(x.ID)]++
					}
				}
			}
		}
		for id, n := range expect {
			if id == "null" {
				continue // parse errors and unreadable ids are answered with null too
			}
			if a := answered[id]; a < n || a > allow[id] {
				t.Fatalf("id %s: %d responses, want %d (at most %d)\nin:  %q\nout: %q", id, a, n, allow[id], msgs, got)
			}
			if n == allow[id] && refused[id] > 0 {
				t.Fatalf("id %s: a valid request was refused as invalid\nin:  %q\nout: %q", id, msgs, got)
			}
		}
		for id, a := range answered {
			if id != "null" && a > allow[id] {
				t.Fatalf("id %s: %d responses, at most %d possible\nin:  %q\nout: %q", id, a, allow[id], msgs, got)
			}
		}
	})
}

const transcriptMaxBatch = 10

var rsMemberNames = []string{"jsonrpc", "id", "method", "params", "result", "error"}

// rsModelMessage adds to expect the ids of the valid requests in message m
// (a request, or a batch of at most maxBatch items), and to allow the ids of
// every object that could be answered, valid or not.
func rsModelMessage(m []byte, maxBatch int, expect, allow map[string]int) {
	if !json.Valid(m) || !utf8.Valid(m) {
		return
	}
	t := bytes.TrimLeft(m, " \t\r\n")
	if t[0] == '[' {
		var items []json.RawMessage
		json.Unmarshal(t, &items)
		if len(items) == 0 || len(items) > maxBatch {
			return
		}
		for _, it := range items {
			rsModelObject(it, expect, allow)
		}
		return
	}
	rsModelObject(t, expect, allow)
}

func rsModelObject(o []byte, expect, allow map[string]int) {
	if o[0] != '{' {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(o))
	dec.Token() // {
	members := map[string]json.RawMessage{}
	valid := true
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		key := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return
		}
		for _, n := range rsMemberNames {
			if strings.EqualFold(key, n) && key != n {
				valid = false // case variant
			}
		}
		if _, dup := members[key]; dup && slicesContains(rsMemberNames, key) {
			valid = false
		}
		members[key] = v
	}
	id, hasID := members["id"]
	if hasID && rsIDOK(id) {
		allow[string(id)]++
	}
	var version, method string
	if json.Unmarshal(members["jsonrpc"], &version) != nil || version != "2.0" {
		valid = false
	}
	if raw, ok := members["method"]; !ok || json.Unmarshal(raw, &method) != nil || raw[0] != '"' {
		valid = false
	}
	if _, ok := members["result"]; ok {
		valid = false
	}
	if _, ok := members["error"]; ok {
		valid = false
	}
	if p, ok := members["params"]; ok && p[0] != '[' && p[0] != '{' && string(p) != "null" {
		valid = false
	}
	if valid && hasID && rsIDOK(id) {
		expect[string(id)]++
	}
}

// rsIDOK: a string, a number or null.
func rsIDOK(id json.RawMessage) bool {
	switch id[0] {
	case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkParseCommon checks that the fast path for the common shape of an
// object, where it applies, makes the envelope that the general parser
// makes of it, and ends where it ends.
func checkParseCommon(t *testing.T, data []byte, i int) {
	t.Helper()
	var fast, slow envelope
	end := parseCommon(data, i, 0, &fast)
	if end == 0 {
		require.Equal(t, envelope{}, fast, "parseCommon refused %q but changed the envelope", data)
		return
	}
	slowEnd, err := parseMembers(data, i, 0, &slow)
	require.NoError(t, err, "parseCommon accepted %q", data)
	require.Equal(t, slowEnd, end, "%q", data)
	require.Equal(t, slow, fast, "%q", data)
	require.Empty(t, fast.invalid, "%q", data)
}

func TestParseCommonAgreesWithMembers(t *testing.T) {
	t.Parallel()
	accepted := 0
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2]}`,
		`{"jsonrpc":"2.0","id":0,"method":"m","params":{"a":[1,{"b":null}]}}`,
		`{"jsonrpc":"2.0","id":12345678901234567890123,"method":"a.b","params":[]}`,
		`{"jsonrpc":"2.0","id":7,"method":"m"}`,
		`{"jsonrpc":"2.0","id":7,"method":""}`,
		`{"jsonrpc":"2.0","id":7,"result":null}`,
		`{"jsonrpc":"2.0","id":7,"result":{"x":"\u00e9"}}`,
		`{"jsonrpc":"2.0","id":7,"result":"é"} `,
		`{"jsonrpc":"2.0","id":7,"result":0}`,
		`{"jsonrpc":"2.0","id":7,"result":120}`,
		`{"jsonrpc":"2.0","id":7,"result":12.5}`,
		`{"jsonrpc":"2.0","id":7,"result":-3}`,
		`{"jsonrpc":"2.0","id":7,"result":1e5}`,
		// Shapes the fast path leaves to parseMembers.
		`{"jsonrpc":"2.0","id":01,"method":"m"}`,
		`{"jsonrpc":"2.0","id":-1,"method":"m"}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"m"}`,
		`{"jsonrpc":"2.0","id":1e3,"method":"m"}`,
		`{"jsonrpc":"2.0","id":"1","method":"m"}`,
		`{"jsonrpc":"2.0","id":1,"method":"m\u0041"}`,
		`{"jsonrpc":"2.0","id":1,"method":"é"}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":1}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":null}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":[1}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":[1],"id":2}`,
		`{"jsonrpc":"2.0","id":1,"result":1,"error":{}}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","result":1}`,
		`{"jsonrpc":"2.0","id":1,"method":"m" }`,
		`{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"m","params":[1]`,
		`{"jsonrpc":"2.0","id":7,"result":01}`,
		`{"jsonrpc":"2.0","id":7,"result":1.}`,
		`{"jsonrpc":"2.0","id":7,"result":2,"result":3}`,
		`{"jsonrpc":"2.0","id":1,"method":"a	b"}`,
		`{"jsonrpc":"2.0","id":1,`,
		`{"jsonrpc":"2.0","id":1`,
	} {
		data := []byte(s)
		checkParseCommon(t, data, 0)
		var e envelope
		if parseCommon(data, 0, 0, &e) > 0 {
			accepted++
		}
	}
	require.Equal(t, 13, accepted, "the first thirteen take the fast path")
}

func TestIncDecimal(t *testing.T) {
	t.Parallel()
	for _, n := range []uint64{0, 1, 8, 9, 10, 99, 199, 999, 1234567, 9999999, 1<<63 - 1, 1<<64 - 2} {
		var buf [24]byte
		got := incDecimal(strconv.AppendUint(buf[:0], n, 10))
		require.Equal(t, strconv.FormatUint(n+1, 10), string(got), "%d", n)
	}
}

// TestBatchEncodeNames: names repeated, alternating, in notifications and
// with characters to escape come out as encoding each on its own would.
func TestBatchEncodeNames(t *testing.T) {
	t.Parallel()
	b := (&Peer{}).NewBatch()
	b.Call("a", nil, nil)
	b.Call("a", []int{1}, nil)
	b.Notify("a", nil)
	b.Call("b\"c", nil, nil)
	b.Notify("b\"c", []int{2})
	b.Call("a", nil, nil)
	got, err := b.encode(nil, 9, nil)
	require.NoError(t, err)
	want := `[{"jsonrpc":"2.0","id":9,"method":"a"},{"jsonrpc":"2.0","id":10,"method":"a","params":[1]},` +
		`{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":11,"method":"b\"c"},` +
		`{"jsonrpc":"2.0","method":"b\"c","params":[2]},{"jsonrpc":"2.0","id":12,"method":"a"}]`
	require.Equal(t, want, string(got))
	b.recycle()
}
