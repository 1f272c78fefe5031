package relay

// The relay's push socket, GET /v1/websocket (docs/server.md "WebSocket"): a minimal RFC 6455
// client on the standard library (handshake, masked client frames, text messages split into
// continuation frames, ping/pong, close). The relay pushes each accepted envelope as a JSON
// text frame {"type": "envelope", ...} or, with ?batch=N, {"type": "envelopes", ...}; a
// client acknowledges over HTTP or with {"type": "ack"} frames.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6455 §4.2.2 fixes SHA-1 for Sec-WebSocket-Accept
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// wsGUID is RFC 6455 §1.3's fixed GUID of the Sec-WebSocket-Accept computation.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// MaxPushMessage bounds one pushed text message (the reference client's max_size).
const MaxPushMessage = 4 << 20

// Socket is one open push socket. Read from one goroutine; Write and Close are safe from any.
type Socket struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	// CloseCode is the status code of the relay's close frame (0 until one arrived), e.g.
	// 4401 when the token was refused or the device removed.
	CloseCode int
}

// ClosedError is a socket the relay closed with a close frame carrying Code.
type ClosedError struct{ Code int }

func (e *ClosedError) Error() string {
	return fmt.Sprintf("push socket closed by the relay (%d)", e.Code)
}

// DialPush opens the device's push socket with its current access token.
func (c *Client) DialPush(ctx context.Context) (*Socket, error) {
	u, err := url.Parse(c.base + "/v1/websocket")
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		conn.Close()
		return nil, err
	}
	key := base64.StdEncoding.EncodeToString(nonce)
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: semafore-go-adapter/1\r\n"+
		"Authorization: Bearer %s\r\n\r\n", u.RequestURI(), u.Host, key, c.token())
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		conn.Close()
		return nil, err
	}
	sum := sha1.Sum([]byte(key + wsGUID)) //nolint:gosec
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, &Rejected{Status: resp.StatusCode, Code: "websocket_refused", Detail: "the relay did not upgrade the push socket"}
	}
	_ = conn.SetDeadline(time.Time{})
	return &Socket{conn: conn, br: br}, nil
}

// Read returns the next text message (answering pings on the way). A close frame ends the
// socket with *ClosedError.
func (s *Socket) Read() ([]byte, error) {
	var msg []byte
	for {
		fin, op, payload, err := s.frame()
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x1, 0x2, 0x0: // text, binary, continuation
			msg = append(msg, payload...)
			if len(msg) > MaxPushMessage {
				s.Close()
				return nil, errors.New("push message larger than MaxPushMessage")
			}
			if fin {
				return msg, nil
			}
		case 0x8: // close
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			s.CloseCode = code
			_ = s.write(0x8, payload[:min(len(payload), 2)])
			s.conn.Close()
			return nil, &ClosedError{Code: code}
		case 0x9: // ping
			if err := s.write(0xA, payload); err != nil {
				return nil, err
			}
		case 0xA: // pong
		default:
			s.Close()
			return nil, fmt.Errorf("push socket: unknown opcode %#x", op)
		}
	}
}

func (s *Socket) frame() (fin bool, op byte, payload []byte, err error) {
	var head [2]byte
	if _, err = io.ReadFull(s.br, head[:]); err != nil {
		return
	}
	fin, op = head[0]&0x80 != 0, head[0]&0x0f
	n := uint64(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(s.br, ext[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(s.br, ext[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > MaxPushMessage {
		err = errors.New("push frame larger than MaxPushMessage")
		return
	}
	var mask [4]byte
	masked := head[1]&0x80 != 0
	if masked {
		if _, err = io.ReadFull(s.br, mask[:]); err != nil {
			return
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(s.br, payload); err != nil {
		return
	}
	if masked {
		for i := range payload {
			payload[i] ^= mask[i%4]
		}
	}
	return
}

// write sends one masked frame (RFC 6455 §5.3: every client frame is masked).
func (s *Socket) write(op byte, payload []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	frame := []byte{0x80 | op}
	n := len(payload)
	switch {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xffff:
		frame = append(frame, 0x80|126, byte(n>>8), byte(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	var mask [4]byte
	if _, err := rand.Read(mask[:]); err != nil {
		return err
	}
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	_, err := s.conn.Write(frame)
	return err
}

// WriteJSON sends v as one text frame.
func (s *Socket) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(0x1, b)
}

// Close ends the socket (a normal close frame, then the connection).
func (s *Socket) Close() {
	_ = s.write(0x8, []byte{0x03, 0xe8})
	s.conn.Close()
}

// PushFrame is one pushed frame: "envelope" carries one envelope inline, "envelopes" several.
type PushFrame struct {
	Type      string           `json:"type"`
	Envelopes []QueuedEnvelope `json:"envelopes"`
	QueuedEnvelope
}

// PushedEnvelopes decodes a pushed message into the envelopes it carries (none for other
// frame types: acked, response, error).
func PushedEnvelopes(msg []byte) ([]QueuedEnvelope, error) {
	var f PushFrame
	if err := json.Unmarshal(msg, &f); err != nil {
		return nil, err
	}
	switch f.Type {
	case "envelope":
		return []QueuedEnvelope{f.QueuedEnvelope}, nil
	case "envelopes":
		return f.Envelopes, nil
	}
	return nil, nil
}
