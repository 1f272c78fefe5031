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
	{Content{ID: "m-2", Kind: KindAttachment, At: 2.5, Body: []byte("cap"), Attachment: &Attachment{FileID: "f-1", Key: seq(0), SHA256: seq(32), Size: 7}},
		`SFC1{"at":2.5,"att":{"id":"f-1","key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","sha":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=","size":7},"body":"Y2Fw","id":"m-2","kind":"attachment"}`},
	{Content{ID: "r-1", Kind: KindReceipt, At: 3.25, Rcpt: []string{"m-1", "m-2"}, SyncTo: "bob"},
		`SFC1{"at":3.25,"body":"","id":"r-1","kind":"receipt","rcpt":["m-1","m-2"],"sync":"bob"}`},
}

func seq(from byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = from + byte(i)
	}
	return out
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
		if got.ID != tc.c.ID || got.Kind != tc.c.Kind || got.At != tc.c.At || !bytes.Equal(got.Body, tc.c.Body) || got.SyncTo != tc.c.SyncTo ||
			!bytes.Equal(got.Encode(), tc.c.Encode()) {
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

// k32 is 32 zero bytes in standard base64.
const k32 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

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
		`SFC1{"kind":"text","id":"m","at":"now"}`:                                                                                 "content.at",
		`SFC1{"kind":"text","id":"m","at":null,"body":""}`:                                                                        "content.at",
		`SFC1{"kind":"text","id":"m","at":1}`:                                                                                     "content.body",
		`SFC1{"kind":"text","id":"m","at":1,"body":"aGk"}`:                                                                        "content.body",
		`SFC1{"kind":"text","id":"m","at":1,"body":"a-_="}`:                                                                       "content.body",
		`SFC1{"kind":"text","id":"m","at":1,"body":"","sync":7}`:                                                                  "content.sync",
		`SFC1{"kind":"text","id":"m","at":1,"body":"","sync":null}`:                                                               "content.sync",
		`SFC1{"kind":"receipt","id":"m","at":1,"body":"","rcpt":"m-1"}`:                                                           "content.rcpt",
		`SFC1{"kind":"receipt","id":"m","at":1,"body":"","rcpt":[1]}`:                                                             "content.rcpt",
		`SFC1{"kind":"attachment","id":"m","at":1,"body":"","att":[]}`:                                                            "content.att",
		`SFC1{"kind":"attachment","id":"m","at":1,"body":"","att":{"id":""}}`:                                                     "content.att.id",
		`SFC1{"kind":"attachment","id":"m","at":1,"body":"","att":{"id":"f","key":"AAE="}}`:                                       "content.att.key",
		`SFC1{"kind":"attachment","id":"m","at":1,"body":"","att":{"id":"f","key":"` + k32 + `"}}`:                                "content.att.sha",
		`SFC1{"kind":"attachment","id":"m","at":1,"body":"","att":{"id":"f","key":"` + k32 + `","sha":"` + k32 + `","size":-1}}`:  "content.att.size",
		`SFC1{"kind":"attachment","id":"m","at":1,"body":"","att":{"id":"f","key":"` + k32 + `","sha":"` + k32 + `","size":1.5}}`: "content.att.size",
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
