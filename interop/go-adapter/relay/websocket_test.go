package relay

import (
	"bufio"
	"context"
	"crypto/sha1" //nolint:gosec // RFC 6455
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"testing"
)

// serverFrame writes one unmasked server frame (RFC 6455 §5.1: servers never mask).
func serverFrame(w io.Writer, op byte, payload []byte) {
	head := []byte{0x80 | op}
	if len(payload) < 126 {
		head = append(head, byte(len(payload)))
	} else {
		head = append(head, 126, byte(len(payload)>>8), byte(len(payload)))
	}
	_, _ = w.Write(append(head, payload...))
}

// readClientFrame reads one client frame and checks it is masked.
func readClientFrame(t *testing.T, r *bufio.Reader) (byte, []byte) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		t.Fatal(err)
	}
	if head[1]&0x80 == 0 {
		t.Fatal("a client frame must be masked")
	}
	n := int(head[1] & 0x7f)
	var mask [4]byte
	_, _ = io.ReadFull(r, mask[:])
	payload := make([]byte, n)
	_, _ = io.ReadFull(r, payload)
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return head[0] & 0x0f, payload
}

// A push socket: the handshake carries the bearer token and a valid key, pushed envelope
// frames (single, batched, split into continuation frames) decode, a ping is answered with
// its payload, and the relay's close code (4401) comes back as *ClosedError.
func TestPushSocketReadsEnvelopesAndTheCloseCode(t *testing.T) {
	pongs := make(chan []byte, 1)
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/websocket" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", 401)
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + wsGUID)) //nolint:gosec
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
		serverFrame(rw, 0x1, []byte(`{"type":"envelope","delivery_id":"d1","message_id":"m1","sender_user_id":"a","sender_device_id":"p","body":"AAE="}`))
		serverFrame(rw, 0x9, []byte("hi"))
		batch := []byte(`{"type":"envelopes","envelopes":[{"delivery_id":"d2","body":""},{"delivery_id":"d3","body":""}]}`)
		_, _ = rw.Write([]byte{0x01, byte(10)})
		_, _ = rw.Write(batch[:10])
		serverFrame(rw, 0x0, batch[10:])
		_ = rw.Flush()
		if op, payload := readClientFrame(t, rw.Reader); op == 0xA {
			pongs <- payload
		}
		closing := binary.BigEndian.AppendUint16(nil, 4401)
		serverFrame(rw, 0x8, closing)
		_ = rw.Flush()
		readClientFrame(t, rw.Reader)
	})
	c.setTokens(TokenPair{AccessToken: "tok", RefreshToken: "r"})
	sock, err := c.DialPush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		msg, err := sock.Read()
		if err != nil {
			t.Fatal(err)
		}
		envs, err := PushedEnvelopes(msg)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			ids = append(ids, e.DeliveryID)
		}
	}
	if len(ids) != 3 || ids[0] != "d1" || ids[1] != "d2" || ids[2] != "d3" {
		t.Fatalf("pushed delivery ids %v, want d1 d2 d3", ids)
	}
	if got := string(<-pongs); got != "hi" {
		t.Fatalf("pong carries %q, want the ping's payload", got)
	}
	_, err = sock.Read()
	var closed *ClosedError
	if !errors.As(err, &closed) || closed.Code != 4401 || sock.CloseCode != 4401 {
		t.Fatalf("want the relay's close code 4401, got %v", err)
	}
}

// A relay that does not upgrade refuses the socket (no silent HTTP body read as frames).
func TestPushSocketRefusedWithoutUpgrade(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 404) })
	_, err := c.DialPush(context.Background())
	var rej *Rejected
	if !errors.As(err, &rej) || rej.Status != 404 {
		t.Fatalf("want a refusal naming 404, got %v", err)
	}
}
