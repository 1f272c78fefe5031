package content

import (
	"bytes"
	"errors"
	"testing"

	"semafore.local/goadapter/protocol"
)

// The reference client's bytes for the same values (semafore.client.content.Content.encode).
var referenceEncodings = []struct {
	c    Content
	want string
}{
	{Content{ID: "m-1", Kind: KindText, At: 1764095797.25, Body: []byte("hello bob")},
		`SFC1{"at":1764095797.25,"body":"aGVsbG8gYm9i","id":"m-1","kind":"text"}`},
	{Content{ID: "m-\u00e9\U0001f600", Kind: KindText, At: 1.5, Body: []byte{0, 0xff}, SyncTo: "bob<&>"},
		`SFC1{"at":1.5,"body":"AP8=","id":"m-\u00e9\ud83d\ude00","kind":"text","sync":"bob<&>"}`},
}

func TestEncodeWritesTheReferenceBytes(t *testing.T) {
	for _, tc := range referenceEncodings {
		if got := string(tc.c.Encode()); got != tc.want {
			t.Errorf("Encode(%+v)\n got %s\nwant %s", tc.c, got, tc.want)
		}
	}
}

func TestDecodeInvertsEncode(t *testing.T) {
	for _, tc := range referenceEncodings {
		got, err := Decode([]byte(tc.want))
		if err != nil {
			t.Fatalf("Decode(%s): %v", tc.want, err)
		}
		if got.ID != tc.c.ID || got.Kind != tc.c.Kind || got.At != tc.c.At || !bytes.Equal(got.Body, tc.c.Body) || got.SyncTo != tc.c.SyncTo {
			t.Errorf("Decode(%s) = %+v, want %+v", tc.want, got, tc.c)
		}
	}
}

func TestDecodeAcceptsAnyTimeAndUnknownKeys(t *testing.T) {
	got, err := Decode([]byte(`SFC1{"x":{"k":"v"},"rcpt":[],"kind":"text","id":"m","body":"","at":17}`))
	if err != nil || got.At != 17 || len(got.Body) != 0 || got.SyncTo != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestDecodeRejectsMalformedContentNamingTheField(t *testing.T) {
	cases := map[string]string{
		``:                            "content.magic",
		`SFC2{}`:                      "content.magic",
		`SFC1[1]`:                     "content.json",
		`SFC1{"kind":`:                "content.json",
		`SFC1{"kind":"poem"}`:         "content.kind",
		`SFC1{"kind":1}`:              "content.kind",
		`SFC1{"kind":"text"}`:         "content.id",
		`SFC1{"kind":"text","id":""}`: "content.id",
		`SFC1{"kind":"text","id":"m","at":"now"}`:                   "content.at",
		`SFC1{"kind":"text","id":"m","at":null,"body":""}`:          "content.at",
		`SFC1{"kind":"text","id":"m","at":1}`:                       "content.body",
		`SFC1{"kind":"text","id":"m","at":1,"body":"aGk"}`:          "content.body",
		`SFC1{"kind":"text","id":"m","at":1,"body":"a-_="}`:         "content.body",
		`SFC1{"kind":"text","id":"m","at":1,"body":"","sync":7}`:    "content.sync",
		`SFC1{"kind":"text","id":"m","at":1,"body":"","sync":null}`: "content.sync",
	}
	for in, field := range cases {
		_, err := Decode([]byte(in))
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Name != protocol.ErrMalformedEnvelope || pe.Field != field {
			t.Errorf("Decode(%q) = %v, want MalformedEnvelope on %s", in, err, field)
		}
	}
}

func FuzzDecodeNeverPanics(f *testing.F) {
	for _, tc := range referenceEncodings {
		f.Add([]byte(tc.want))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err == nil {
			if _, err := Decode(c.Encode()); err != nil {
				t.Fatalf("re-encoding a decoded content does not decode: %v", err)
			}
		}
	})
}
