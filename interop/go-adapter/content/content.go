// Package content is what travels inside a live message's DR_V1 frame, end to end: the
// content encoding of docs/adapter-contract.md §5, "SFC1" || canonical JSON (keys sorted, no
// spaces, byte strings as standard base64 with padding). The relay never sees it.
//
// Encode writes the reference client's bytes for the same values (it also escapes every
// non-ASCII character as \uXXXX, as Python's json.dumps does), so transcripts of the two
// implementations compare; Decode accepts any number for "at" and ignores unknown keys, as
// the contract asks of receivers.
package content

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"semafore.local/goadapter/protocol"
)

// Magic versions the encoding.
const Magic = "SFC1"

// Kinds the reference client knows. A live message is "text"; "reset" carries a SPEC §4
// reset notice end to end (the relay routes only SMX1 and DR_V1 bodies).
const (
	KindText       = "text"
	KindAttachment = "attachment"
	KindReceipt    = "receipt"
	KindBroadcast  = "broadcast"
	KindReset      = "reset"
)

var kinds = map[string]bool{KindText: true, KindAttachment: true, KindReceipt: true, KindBroadcast: true, KindReset: true}

// Content is one message as the application sees it.
type Content struct {
	ID   string  // message id (the relay's message id too)
	Kind string  // one of the Kind constants
	At   float64 // send time, unix seconds
	Body []byte
	// SyncTo names the conversation (peer user id) of a copy sent to the sender's own
	// other devices; empty for a message to a peer.
	SyncTo string
	// Attachment points at an encrypted blob at the relay (kind "attachment", ADR-0157).
	Attachment *Attachment
	// Rcpt lists the message ids a read receipt acknowledges (kind "receipt").
	Rcpt []string
}

// Attachment is what a recipient needs to fetch and open an attachment (the reference's
// AttachmentPointer): the relay's file id, the AES-256-GCM key, the SHA-256 of the blob
// and the plaintext size.
type Attachment struct {
	FileID string
	Key    []byte // 32 bytes
	SHA256 []byte // 32 bytes
	Size   int
}

// wire has its fields in sorted key order, so encoding/json writes canonical JSON.
type wire struct {
	At   float64  `json:"at"`
	Att  *wireAtt `json:"att,omitempty"`
	Body string   `json:"body"`
	ID   string   `json:"id"`
	Kind string   `json:"kind"`
	Rcpt []string `json:"rcpt,omitempty"`
	Sync string   `json:"sync,omitempty"`
}

type wireAtt struct {
	ID   string `json:"id"`
	Key  string `json:"key"`
	SHA  string `json:"sha"`
	Size int    `json:"size"`
}

// Encode returns "SFC1" || canonical JSON.
func (c Content) Encode() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// A struct of strings and a finite float cannot fail to encode.
	w := wire{At: c.At, Body: base64.StdEncoding.EncodeToString(c.Body), ID: c.ID, Kind: c.Kind, Rcpt: c.Rcpt, Sync: c.SyncTo}
	if a := c.Attachment; a != nil {
		w.Att = &wireAtt{a.FileID, base64.StdEncoding.EncodeToString(a.Key), base64.StdEncoding.EncodeToString(a.SHA256), a.Size}
	}
	if err := enc.Encode(w); err != nil {
		panic(err)
	}
	return append([]byte(Magic), asciiOnly(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))...)
}

// asciiOnly escapes every non-ASCII rune of a JSON text as \uXXXX (UTF-16 surrogate pairs
// beyond the BMP). Non-ASCII bytes only occur inside strings, so the JSON stays equivalent.
func asciiOnly(js []byte) []byte {
	out := make([]byte, 0, len(js))
	for len(js) > 0 {
		r, size := utf8.DecodeRune(js)
		switch {
		case r < utf8.RuneSelf:
			out = append(out, js[0])
		case r > 0xFFFF:
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		js = js[size:]
	}
	return out
}

func malformed(field, format string, a ...any) error {
	return protocol.Malformed("content."+field, format, a...)
}

// Decode parses Encode's output (or the reference's). A malformed content is
// MalformedEnvelope naming the field, e.g. "content.body".
func Decode(data []byte) (Content, error) {
	if len(data) < len(Magic) || string(data[:len(Magic)]) != Magic {
		return Content{}, malformed("magic", "content does not start with %q", Magic)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data[len(Magic):], &doc); err != nil || doc == nil {
		return Content{}, malformed("json", "content is not a UTF-8 JSON object")
	}
	var c Content
	if err := str(doc, "kind", &c.Kind); err != nil {
		return Content{}, err
	}
	if !kinds[c.Kind] {
		return Content{}, malformed("kind", "unknown kind %q", c.Kind)
	}
	if err := str(doc, "id", &c.ID); err != nil {
		return Content{}, err
	}
	if c.ID == "" {
		return Content{}, malformed("id", "id must be a non-empty string")
	}
	if at := doc["at"]; at == nil || bytes.Equal(at, []byte("null")) || json.Unmarshal(at, &c.At) != nil {
		return Content{}, malformed("at", "at must be a number")
	}
	var body string
	if err := str(doc, "body", &body); err != nil {
		return Content{}, err
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(body)
	if err != nil {
		return Content{}, malformed("body", "body is not standard base64")
	}
	c.Body = raw
	if _, ok := doc["sync"]; ok {
		if err := str(doc, "sync", &c.SyncTo); err != nil {
			return Content{}, err
		}
	}
	if raw, ok := doc["rcpt"]; ok {
		if json.Unmarshal(raw, &c.Rcpt) != nil || c.Rcpt == nil {
			return Content{}, malformed("rcpt", "rcpt must be a list of message ids")
		}
	}
	if raw, ok := doc["att"]; ok {
		a, err := decodeAttachment(raw)
		if err != nil {
			return Content{}, err
		}
		c.Attachment = a
	}
	return c, nil
}

func decodeAttachment(raw json.RawMessage) (*Attachment, error) {
	var doc map[string]json.RawMessage
	if json.Unmarshal(raw, &doc) != nil || doc == nil {
		return nil, malformed("att", "att must be an object")
	}
	var a Attachment
	var key, sha string
	if err := str(doc, "id", &a.FileID); err != nil || a.FileID == "" {
		return nil, malformed("att.id", "att.id must be a non-empty string")
	}
	for _, f := range []struct {
		name string
		out  *string
		dst  *[]byte
	}{{"key", &key, &a.Key}, {"sha", &sha, &a.SHA256}} {
		if str(doc, f.name, f.out) != nil {
			return nil, malformed("att."+f.name, "att.%s must be a base64 string", f.name)
		}
		b, err := base64.StdEncoding.Strict().DecodeString(*f.out)
		if err != nil || len(b) != 32 {
			return nil, malformed("att."+f.name, "att.%s must be 32 bytes of standard base64", f.name)
		}
		*f.dst = b
	}
	size, ok := doc["size"]
	if !ok || json.Unmarshal(size, &a.Size) != nil || a.Size < 0 || bytes.ContainsAny(size, ".eE") {
		return nil, malformed("att.size", "att.size must be a non-negative integer")
	}
	return &a, nil
}

func str(doc map[string]json.RawMessage, key string, out *string) error {
	raw, ok := doc[key]
	if !ok || json.Unmarshal(raw, out) != nil || bytes.Equal(raw, []byte("null")) {
		return malformed(key, "%s must be a string", key)
	}
	return nil
}
