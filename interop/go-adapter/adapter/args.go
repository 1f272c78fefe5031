package adapter

import (
	"encoding/hex"
	"fmt"
	"math"

	"semafore.local/goadapter/protocol"
)

// Args is one request's "args" object with typed accessors. Every missing or malformed
// argument is MalformedEnvelope naming its path (e.g. "args.bundle.spk.sig"), like the
// protocol's own parsers: a bad request never crashes the adapter.
type Args struct {
	m    map[string]any
	path string
}

func newArgs(v any, path string) (Args, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Args{}, protocol.Malformed(path, "%s is not a JSON object", path)
	}
	return Args{m: m, path: path}, nil
}

func (a Args) field(name string) string { return a.path + "." + name }

// Has reports whether the argument is present and not null.
func (a Args) Has(name string) bool { v, ok := a.m[name]; return ok && v != nil }

func (a Args) get(name string) (any, error) {
	v, ok := a.m[name]
	if !ok || v == nil {
		return nil, protocol.Malformed(a.field(name), "missing argument %s", a.field(name))
	}
	return v, nil
}

// String returns a string argument.
func (a Args) String(name string) (string, error) {
	v, err := a.get(name)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", protocol.Malformed(a.field(name), "%s must be a string", a.field(name))
	}
	return s, nil
}

// Users returns a recipient argument: one user id (a string) or a non-empty list of them
// (a message to several users, docs/adapter-contract.md §5 live.send).
func (a Args) Users(name string) ([]string, error) {
	v, err := a.get(name)
	if err != nil {
		return nil, err
	}
	switch t := v.(type) {
	case string:
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, item := range t {
			s, ok := item.(string)
			if !ok || s == "" {
				return nil, protocol.Malformed(a.field(name), "%s must list user ids (strings)", a.field(name))
			}
			out = append(out, s)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	return nil, protocol.Malformed(a.field(name), "%s must be a user id or a non-empty list of them", a.field(name))
}

// Bytes returns a lowercase-or-uppercase hex argument as bytes.
func (a Args) Bytes(name string) ([]byte, error) {
	s, err := a.String(name)
	if err != nil {
		return nil, err
	}
	return decodeHex(s, a.field(name))
}

// Key returns a hex argument that must be exactly n bytes.
func (a Args) Key(name string, n int) ([]byte, error) {
	b, err := a.Bytes(name)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, protocol.Malformed(a.field(name), "%s must be %d bytes, got %d", a.field(name), n, len(b))
	}
	return b, nil
}

// PublicKey returns a hex public key that must be exactly n bytes. Unlike a private key (a
// request error), a peer's public key of the wrong size is a protocol-level rejection: the
// contract names it InvalidKey (InvalidSignature for a key that only verifies signatures).
func (a Args) PublicKey(name string, n int, errName string) ([]byte, error) {
	b, err := a.Bytes(name)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, &protocol.Error{Name: errName, Field: a.field(name), Detail: fmt.Sprintf("public key must be %d bytes, got %d", n, len(b))}
	}
	return b, nil
}

// Object returns a nested object argument.
func (a Args) Object(name string) (Args, error) {
	v, err := a.get(name)
	if err != nil {
		return Args{}, err
	}
	return newArgs(v, a.field(name))
}

// OptObject returns a nested object, or ok=false when absent or null.
func (a Args) OptObject(name string) (Args, bool, error) {
	if !a.Has(name) {
		return Args{}, false, nil
	}
	o, err := a.Object(name)
	return o, err == nil, err
}

// List returns a list argument.
func (a Args) List(name string) ([]any, error) {
	v, err := a.get(name)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok {
		return nil, protocol.Malformed(a.field(name), "%s must be a list", a.field(name))
	}
	return l, nil
}

// HexList returns a list of hex strings, each exactly n bytes (n < 0: any length).
func (a Args) HexList(name string, n int) ([][]byte, error) {
	l, err := a.List(name)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(l))
	for i, v := range l {
		field := fmt.Sprintf("%s[%d]", a.field(name), i)
		s, ok := v.(string)
		if !ok {
			return nil, protocol.Malformed(field, "%s must be a hex string", field)
		}
		b, err := decodeHex(s, field)
		if err != nil {
			return nil, err
		}
		if n >= 0 && len(b) != n {
			return nil, protocol.Malformed(field, "%s must be %d bytes, got %d", field, n, len(b))
		}
		out[i] = b
	}
	return out, nil
}

// ObjectList returns a list of objects.
func (a Args) ObjectList(name string) ([]Args, error) {
	l, err := a.List(name)
	if err != nil {
		return nil, err
	}
	out := make([]Args, len(l))
	for i, v := range l {
		if out[i], err = newArgs(v, fmt.Sprintf("%s[%d]", a.field(name), i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Bool returns an optional boolean argument (absent or null: def).
func (a Args) Bool(name string, def bool) (bool, error) {
	if !a.Has(name) {
		return def, nil
	}
	b, ok := a.m[name].(bool)
	if !ok {
		return false, protocol.Malformed(a.field(name), "%s must be a boolean", a.field(name))
	}
	return b, nil
}

// Int returns a non-negative integer argument no larger than max.
func (a Args) Int(name string, max int) (int, error) {
	v, err := a.get(name)
	if err != nil {
		return 0, err
	}
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f < 0 || f > float64(max) {
		return 0, protocol.Malformed(a.field(name), "%s must be an integer in 0..%d", a.field(name), max)
	}
	return int(f), nil
}

func decodeHex(s, field string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, protocol.Malformed(field, "%s is not hex", field)
	}
	return b, nil
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

// hexOrNull renders optional bytes as hex or JSON null.
func hexOrNull(b []byte) any {
	if b == nil {
		return nil
	}
	return hexOf(b)
}
