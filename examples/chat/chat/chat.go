// Package chat is the server of examples/chat: rooms, messages and
// presence over wsrpc, for the page it embeds (index.html), which uses the
// browser client wsrpc.js. Command chat serves it; test/browser drives it
// in headless Chromium.
//
// The API the page calls:
//
//	join  [room]  leaves the current room, joins room; returns its members
//	say   [text]  sends the notification "message" {room, from, text, at}
//	              to the room's members (Server.Publish to the topic
//	              "room.<room>", which each member joined)
//	rooms []      lists the rooms and how many are in each
//
// and what the server sends it:
//
//	presence {room, user, joined}  a call: someone joined or left the
//	                               page's room; the page answers true
//	rooms    [{name, members}]     a notification to everyone whenever a
//	                               room's membership changes
package chat

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsrpc/wsrpc"
)

//go:embed index.html
var page []byte

// DefaultRooms are listed even when empty.
var DefaultRooms = []string{"lobby", "golang", "random"}

const (
	maxText         = 500             // runes in a message
	presenceTimeout = 2 * time.Second // for a page to answer a presence call
	presenceFanout  = 8               // presence calls in flight per event
)

// Message is the params of the "message" notification.
type Message struct {
	Room string    `json:"room"`
	From string    `json:"from"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Presence is the params of the "presence" call to a page.
type Presence struct {
	Room   string `json:"room"`
	User   string `json:"user"`
	Joined bool   `json:"joined"`
}

// Room is one entry of the answer to "rooms".
type Room struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}

// session is the per-connection state, kept on the peer under sessionKey.
// name never changes; room is guarded by Chat.mu.
type session struct {
	name string
	room string
}

var sessionKey = wsrpc.NewKey[*session]("chat.session")

// Chat is the chat server: the page at /, wsrpc.js at /wsrpc.js and the
// JSON-RPC endpoint at /rpc.
type Chat struct {
	srv *wsrpc.Server
	mux *http.ServeMux
	log *slog.Logger

	mu      sync.Mutex
	rooms   map[string]map[*wsrpc.Peer]*session // members by room
	closing bool
	bg      sync.WaitGroup // announcements of departures
}

// New returns a chat server that logs to logger (nil: nowhere).
func New(logger *slog.Logger) *Chat { return NewWithBroker(logger, nil) }

// NewWithBroker returns a chat server that shares its rooms' messages with
// the other servers on broker (wsrpc.ServerOptions.Broker; nil: none), as
// examples/cluster does over NATS. Member lists, presence and room counts
// stay each server's own.
func NewWithBroker(logger *slog.Logger, broker wsrpc.Broker) *Chat {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Chat{log: logger, rooms: map[string]map[*wsrpc.Peer]*session{}}
	m := wsrpc.NewMethods()
	m.Use(wsrpc.Recover(logger))
	wsrpc.Register(m, "join", c.join)
	wsrpc.Register(m, "say", c.say)
	wsrpc.Register(m, "rooms", func(ctx context.Context, _ any) ([]Room, error) { return c.roomList(), nil })
	c.srv = wsrpc.NewServer(&wsrpc.ServerOptions{
		Methods: m,
		Logger:  logger,
		Broker:  broker,
		// The page passes the user's name as its token: ?token=ada. A
		// real chat would take a session cookie set at login here.
		Authenticate: func(r *http.Request) (any, error) {
			name := r.URL.Query().Get("token")
			if !validName(name) {
				return nil, &wsrpc.HTTPError{Status: http.StatusUnauthorized, Message: "a name is 1 to 20 letters or digits"}
			}
			return name, nil
		},
		OnConnect: func(p *wsrpc.Peer) {
			name, _ := p.Identity().(string)
			sessionKey.Set(p, &session{name: name})
			logger.Info("connected", "user", name, "peer", p.ID())
		},
		OnDisconnect: c.disconnected,
	})
	c.mux = http.NewServeMux()
	c.mux.Handle("/rpc", c.srv)
	c.mux.Handle("/wsrpc.js", wsrpc.ScriptHandler())
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(page)
	})
	return c
}

// ServeHTTP serves the page, the script and the endpoint.
func (c *Chat) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Shutdown closes every connection gracefully (see wsrpc.Server.Shutdown)
// and waits for the presence calls in flight.
func (c *Chat) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.closing = true // everyone leaves: nobody to tell
	c.mu.Unlock()
	err := c.srv.Shutdown(ctx)
	c.bg.Wait()
	return err
}

// validName reports whether s is 1 to 20 letters or digits (ASCII).
func validName(s string) bool {
	if len(s) < 1 || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

var errBadRoom = wsrpc.NewError(1001, "a room name is 1 to 20 letters or digits", nil)

// join moves the caller to room and returns its members, the caller
// among them, sorted. The members of the room left and of the room joined
// are told, and have answered (or timed out), when it returns.
func (c *Chat) join(ctx context.Context, args struct{ Room string }) ([]string, error) {
	room := strings.ToLower(args.Room)
	if !validName(room) {
		return nil, errBadRoom
	}
	p := wsrpc.PeerFromContext(ctx)
	s, ok := sessionKey.Get(p)
	if !ok {
		return nil, wsrpc.NewError(1000, "not connected over WebSocket", nil)
	}
	c.mu.Lock()
	old := s.room
	if old == room {
		members := c.membersLocked(room)
		c.mu.Unlock()
		return members, nil
	}
	leftPeers := c.removeLocked(p, s)
	if c.rooms[room] == nil {
		c.rooms[room] = map[*wsrpc.Peer]*session{}
	}
	joinedPeers := peersOf(c.rooms[room])
	c.rooms[room][p] = s
	s.room = room
	members := c.membersLocked(room)
	c.mu.Unlock()

	c.log.Info("join", "user", s.name, "room", room, "left", old)
	if old != "" {
		p.Leave(roomTopic(old))
	}
	if err := p.Join(roomTopic(room)); err != nil {
		c.log.Warn("join: the other servers' messages will not reach this room", "err", err)
	}
	// Tell the others, even if the caller goes away meanwhile.
	actx := context.WithoutCancel(ctx)
	if old != "" {
		c.announce(actx, leftPeers, Presence{Room: old, User: s.name, Joined: false})
	}
	c.announce(actx, joinedPeers, Presence{Room: room, User: s.name, Joined: true})
	c.broadcastRooms(actx)
	return members, nil
}

// say sends text to the members of the caller's room, the caller
// included.
func (c *Chat) say(ctx context.Context, args struct{ Text string }) (int, error) {
	text := strings.TrimSpace(args.Text)
	if text == "" || utf8.RuneCountInString(text) > maxText {
		return 0, wsrpc.NewError(1002, "a message is 1 to 500 characters", nil)
	}
	s, ok := sessionKey.Get(wsrpc.PeerFromContext(ctx))
	if !ok {
		return 0, wsrpc.NewError(1000, "not connected over WebSocket", nil)
	}
	c.mu.Lock()
	room := s.room
	c.mu.Unlock()
	if room == "" {
		return 0, wsrpc.NewError(1003, "join a room first", nil)
	}
	msg := Message{Room: room, From: s.name, Text: text, At: time.Now().UTC().Truncate(time.Millisecond)}
	res, err := c.srv.Publish(ctx, roomTopic(room), "message", msg)
	if errors.Is(err, wsrpc.ErrBrokerUnavailable) {
		c.log.Warn("say: the message did not reach the other servers", "err", err)
		err = nil // this server's members have it
	}
	return res.Sent, err
}

// roomTopic is the wsrpc topic whose members are room's.
func roomTopic(room string) string { return "room." + room }

// disconnected is OnDisconnect: the peer leaves its room, and the others
// in it are told on a goroutine of their own (Shutdown waits for it).
func (c *Chat) disconnected(p *wsrpc.Peer) {
	s, ok := sessionKey.Get(p)
	if !ok {
		return
	}
	c.log.Info("disconnected", "user", s.name, "peer", p.ID())
	c.mu.Lock()
	room := s.room
	others := c.removeLocked(p, s)
	if c.closing || room == "" {
		c.mu.Unlock()
		return
	}
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.bg.Done()
		ctx := context.Background()
		c.announce(ctx, others, Presence{Room: room, User: s.name, Joined: false})
		c.broadcastRooms(ctx)
	}()
}

// removeLocked takes p out of its room and returns the peers left in it.
func (c *Chat) removeLocked(p *wsrpc.Peer, s *session) []*wsrpc.Peer {
	if s.room == "" {
		return nil
	}
	members := c.rooms[s.room]
	delete(members, p)
	if len(members) == 0 {
		delete(c.rooms, s.room)
	}
	s.room = ""
	return peersOf(members)
}

func peersOf(m map[*wsrpc.Peer]*session) []*wsrpc.Peer {
	ps := make([]*wsrpc.Peer, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	return ps
}

func (c *Chat) membersLocked(room string) []string {
	names := make([]string, 0, len(c.rooms[room]))
	for _, s := range c.rooms[room] {
		names = append(names, s.name)
	}
	slices.Sort(names)
	return names
}

func (c *Chat) roomList() []Room {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := make([]Room, 0, len(DefaultRooms)+len(c.rooms))
	for _, name := range DefaultRooms {
		list = append(list, Room{Name: name, Members: len(c.rooms[name])})
	}
	for name, members := range c.rooms {
		if !slices.Contains(DefaultRooms, name) {
			list = append(list, Room{Name: name, Members: len(members)})
		}
	}
	slices.SortFunc(list[len(DefaultRooms):], func(a, b Room) int { return strings.Compare(a.Name, b.Name) })
	return list
}

// announce calls "presence" on each of peers, at most presenceFanout at a
// time, each call bounded by presenceTimeout, and returns when all have
// answered or failed. A page that does not answer is only logged.
func (c *Chat) announce(ctx context.Context, peers []*wsrpc.Peer, ev Presence) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, presenceFanout)
	for _, p := range peers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, presenceTimeout)
			defer cancel()
			var ok bool
			if err := p.Call(cctx, "presence", ev, &ok); err != nil {
				c.log.Debug("presence", "peer", p.ID(), "err", err)
			}
		})
	}
	wg.Wait()
}

// broadcastRooms tells every page the new room counts.
func (c *Chat) broadcastRooms(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	if _, err := c.srv.Broadcast(ctx, "rooms", c.roomList(), nil); err != nil {
		c.log.Debug("rooms broadcast", "err", err)
	}
}
