package live

import (
	"context"
	"errors"
	"sync"
	"time"

	"semafore.local/goadapter/relay"
)

// MaxPushed bounds how many pushed envelopes a device holds until its next Receive; beyond
// it pushes are dropped (they stay queued at the relay until acknowledged, and Receive
// fetches the queue over HTTP too, so nothing is lost).
const MaxPushed = 10000

// DialTimeout bounds one push-socket handshake.
const DialTimeout = 10 * time.Second

// push is a device's push socket (docs/server.md "WebSocket"), held while the device is
// registered, as the reference client holds one: the relay pushes each envelope as it is
// accepted, and a network adversary can inject frames on it (the simulator's replay step).
// A goroutine reads the socket into pending; Receive opens what it holds (on the operation's
// goroutine: the protocol state is touched by one goroutine only). When the socket ends it
// reconnects with the retry policy's back-off (relay.Backoff), counting each reconnect as
// the reference client does (semafore/client/client.py _ws_loop); a 4401 close (token
// refused) refreshes the token first.
type push struct {
	client *relay.Client
	stop   chan struct{}
	done   chan struct{}

	mu         sync.Mutex
	pending    []relay.QueuedEnvelope
	reconnects int
	open       bool
	sock       *relay.Socket
}

func startPush(client *relay.Client) *push {
	p := &push{client: client, stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *push) stopped() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

func (p *push) run() {
	defer close(p.done)
	for attempt := 0; ; {
		ctx, cancel := context.WithTimeout(context.Background(), DialTimeout)
		sock, err := p.client.DialPush(ctx)
		cancel()
		refresh := false
		if err == nil {
			p.mu.Lock()
			p.sock, p.open = sock, true
			p.mu.Unlock()
			if p.stopped() { // Close raced the dial
				sock.Close()
				return
			}
			attempt = 0
			err = p.read(sock)
			p.mu.Lock()
			p.sock, p.open = nil, false
			p.mu.Unlock()
			var closed *relay.ClosedError
			refresh = errors.As(err, &closed) && closed.Code == 4401
		}
		if p.stopped() {
			return
		}
		p.mu.Lock()
		p.reconnects++
		p.mu.Unlock()
		if refresh {
			ctx, cancel := context.WithTimeout(context.Background(), DialTimeout)
			_ = p.client.Refresh(ctx)
			cancel()
		}
		t := time.NewTimer(p.client.BackoffDelay(min(attempt, 10)))
		select {
		case <-p.stop:
			t.Stop()
			return
		case <-t.C:
		}
		attempt++
	}
}

func (p *push) read(sock *relay.Socket) error {
	for {
		msg, err := sock.Read()
		if err != nil {
			return err
		}
		envs, err := relay.PushedEnvelopes(msg)
		if err != nil {
			continue // an unreadable frame (e.g. injected garbage): nothing to open
		}
		p.mu.Lock()
		for _, env := range envs {
			if len(p.pending) < MaxPushed && env.DeliveryID != "" {
				p.pending = append(p.pending, env)
			}
		}
		p.mu.Unlock()
	}
}

// drain hands over what was pushed since the last call, in arrival order.
func (p *push) drain() []relay.QueuedEnvelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.pending
	p.pending = nil
	return out
}

func (p *push) counts() (reconnects int, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reconnects, p.open
}

// close ends the socket and waits for the goroutine (no reconnect after it).
func (p *push) close() {
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	p.mu.Lock()
	if p.sock != nil {
		p.sock.Close()
	}
	p.mu.Unlock()
	<-p.done
}
