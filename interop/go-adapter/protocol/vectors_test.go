package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The pinned vector files of the repository (SPEC §6), read directly: this proves the Go
// core byte-exact without going through the adapter or the gate.
func loadVectors(t *testing.T, name string) map[string]any {
	t.Helper()
	dir := os.Getenv("SEMAFORE_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "vectors")
	}
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("vector file missing in CI: %v", err)
		}
		t.Skipf("vector file not available: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

func hx(t *testing.T, v any) []byte {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("expected hex string, got %T", v)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func errName(err error) string {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Name
	}
	if err == nil {
		return ""
	}
	return "non-canonical: " + err.Error()
}

type vectorPrekeys struct{ spk, opk *Prekey }

func (p vectorPrekeys) SignedPrekey(id []byte) (KeyPair, bool) {
	if p.spk != nil && bytes.Equal(id, p.spk.KeyID) {
		return p.spk.Pair, true
	}
	return KeyPair{}, false
}

func (p vectorPrekeys) OneTimePrekey(id []byte) (KeyPair, bool) {
	if p.opk != nil && bytes.Equal(id, p.opk.KeyID) {
		return p.opk.Pair, true
	}
	return KeyPair{}, false
}

func privatePrekey(t *testing.T, v any) *Prekey {
	m := obj(v)
	if m == nil {
		return nil
	}
	pair, err := X25519KeyPair(hx(t, m["private"]))
	if err != nil {
		t.Fatal(err)
	}
	return &Prekey{KeyID: []byte(m["key_id"].(string)), Pair: pair}
}

func identity(t *testing.T, m map[string]any) IdentityKeys {
	id, err := NewIdentityKeys(hx(t, m["ik_private"]), hx(t, m["sik_private"]))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func bundleOf(t *testing.T, m map[string]any) Bundle {
	spk := obj(m["spk"])
	b := Bundle{UserID: m["user_id"].(string), DeviceID: m["device_id"].(string), IK: hx(t, m["ik"]), SIK: hx(t, m["sik"]),
		SPK: SignedPrekey{KeyID: []byte(spk["key_id"].(string)), Pub: hx(t, spk["pub"]), Sig: hx(t, spk["sig"])}}
	if opk := obj(m["opk"]); opk != nil {
		b.OPK = &PrekeyRef{KeyID: []byte(opk["key_id"].(string)), Pub: hx(t, opk["pub"])}
	}
	return b
}

func respondFrom(t *testing.T, in map[string]any) ([]byte, *Response, error) {
	bob := obj(in["bob"])
	alice := obj(in["alice"])
	m, err := ParseSMX1(hx(t, in["smx1"]))
	if err != nil {
		return nil, nil, err
	}
	lookup := vectorPrekeys{spk: privatePrekey(t, bob["spk"]), opk: privatePrekey(t, bob["opk"])}
	addrB := bob["user_id"].(string) + ":" + bob["device_id"].(string)
	r, err := Respond(identity(t, bob), addrB, lookup, hx(t, alice["ik"]), hx(t, alice["sik"]), alice["address"].(string), m)
	if err != nil {
		return nil, nil, err
	}
	return r.Frame, r, nil
}

func TestX3DHVectors(t *testing.T) {
	doc := loadVectors(t, "x3dh-prekey-v1.json")
	for _, c := range doc["cases"].([]any) {
		c := obj(c)
		t.Run(c["id"].(string), func(t *testing.T) {
			in, want := obj(c["input"]), obj(c["expected"])
			alice := identity(t, obj(in["alice"]))
			if !bytes.Equal(alice.IK.Public, hx(t, obj(want["alice"])["ik"])) || !bytes.Equal(alice.SIKPub, hx(t, obj(want["alice"])["sik"])) {
				t.Fatal("alice public keys differ")
			}
			bob := identity(t, obj(in["bob"]))
			spk := privatePrekey(t, obj(in["bob"])["spk"])
			sig, err := SignSPK(bob.SIK, spk.KeyID, spk.Pair.Public, bob.IK.Public)
			if err != nil {
				t.Fatal(err)
			}
			bundle := bundleOf(t, obj(want["bundle"]))
			if !bytes.Equal(sig, bundle.SPK.Sig) {
				t.Fatalf("spk sig\n got %x\nwant %x", sig, bundle.SPK.Sig)
			}
			ek, _ := X25519KeyPair(hx(t, in["ek_private"]))
			a := obj(in["alice"])
			init, err := InitiateWithEK(alice, a["user_id"].(string)+":"+a["device_id"].(string), bundle, ek)
			if err != nil {
				t.Fatal(err)
			}
			dhs := want["dh"].([]any)
			got := [][]byte{init.DH1, init.DH2, init.DH3}
			if init.DH4 != nil {
				got = append(got, init.DH4)
			}
			if len(got) != len(dhs) {
				t.Fatalf("%d DH outputs, want %d", len(got), len(dhs))
			}
			for i := range dhs {
				if !bytes.Equal(got[i], hx(t, dhs[i])) {
					t.Fatalf("DH%d differs", i+1)
				}
			}
			for name, v := range map[string][]byte{"sk": init.SK, "ad": init.AD, "rk0": init.RK0} {
				if !bytes.Equal(v, hx(t, want[name])) {
					t.Fatalf("%s differs:\n got %x\nwant %s", name, v, want[name])
				}
			}
			smx1 := init.Seal(hx(t, in["plaintext"]), hx(t, in["nonce"]))
			if !bytes.Equal(smx1, hx(t, want["smx1"])) {
				t.Fatalf("smx1 differs:\n got %x\nwant %s", smx1, want["smx1"])
			}
			m, err := ParseSMX1(smx1)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Encode(), smx1) {
				t.Fatal("parse/encode does not round-trip")
			}
			frame, _, err := respondFrom(t, map[string]any{"bob": in["bob"], "alice": want["alice"], "smx1": want["smx1"]})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(frame, hx(t, in["plaintext"])) {
				t.Fatal("respond plaintext differs")
			}
		})
	}
	for _, c := range doc["negative"].([]any) {
		c := obj(c)
		t.Run("negative/"+c["id"].(string), func(t *testing.T) {
			in := obj(c["input"])
			var err error
			switch op := in["operation"]; op {
			case "smx1.parse":
				_, err = ParseSMX1(hx(t, in["smx1"]))
			case "spk.sign":
				_, err = SignSPK(hx(t, in["sik_private"]), []byte(in["key_id"].(string)), hx(t, in["spk_public"]), hx(t, in["ik_public"]))
			case "x3dh.respond":
				_, _, err = respondFrom(t, in)
			case "x3dh.initiate":
				a := obj(in["alice"])
				ek, _ := X25519KeyPair(hx(t, in["ek_private"]))
				_, err = InitiateWithEK(identity(t, a), a["user_id"].(string)+":"+a["device_id"].(string), bundleOf(t, obj(in["bundle"])), ek)
			default:
				t.Fatalf("unknown operation %v", op)
			}
			if got := errName(err); got != c["expected_error"] {
				t.Fatalf("got %q (%v), want %s", got, err, c["expected_error"])
			}
		})
	}
}

func TestDoubleRatchetVectors(t *testing.T) {
	doc := loadVectors(t, "dr-v1-interop.json")
	for _, c := range doc["cases"].([]any) {
		c := obj(c)
		t.Run(c["id"].(string), func(t *testing.T) {
			in := obj(c["input"])
			setup := obj(in["setup"])
			if setup["initiator"] != "alice" {
				t.Fatalf("initiator %v", setup["initiator"])
			}
			rng := map[string]*ScriptedEntropy{"alice": NewScriptedEntropy(), "bob": NewScriptedEntropy()}
			for side, e := range rng {
				s := obj(setup[side])
				for _, k := range s["ratchet_keys"].([]any) {
					e.Push(PurposeRatchetKey, hx(t, obj(k)["private"]))
				}
				for _, n := range s["nonces"].([]any) {
					e.Push(PurposeNonce, hx(t, n))
				}
			}
			sk, ad := hx(t, setup["sk"]), hx(t, setup["ad"])
			spk, _ := X25519KeyPair(hx(t, obj(obj(setup["bob"])["spk"])["private"]))
			alice, err := InitAlice(RootKey0(sk), ad, spk.Public, rng["alice"])
			if err != nil {
				t.Fatal(err)
			}
			sides := map[string]*Ratchet{"alice": alice, "bob": InitBob(RootKey0(sk), ad, spk)}
			var frames [][]byte
			expected := obj(c["expected"])["steps"].([]any)
			for i, s := range in["steps"].([]any) {
				s, want := obj(s), obj(expected[i])
				var got map[string]string
				switch s["op"] {
				case "encrypt":
					f, err := sides[s["side"].(string)].Encrypt(hx(t, s["plaintext"]), rng[s["side"].(string)])
					if err != nil {
						got = map[string]string{"error": errName(err)}
					} else {
						frames = append(frames, f)
						got = map[string]string{"frame": hex.EncodeToString(f)}
					}
				case "deliver":
					var data []byte
					if fi, ok := s["frame"].(float64); ok {
						data = frames[int(fi)]
					} else {
						data = hx(t, s["data"])
					}
					pt, err := sides[s["to"].(string)].Decrypt(data)
					if err != nil {
						got = map[string]string{"error": errName(err)}
					} else {
						got = map[string]string{"plaintext": hex.EncodeToString(pt)}
					}
				case "digest":
					got = map[string]string{"digest": hex.EncodeToString(sides[s["side"].(string)].Digest())}
				default:
					t.Fatalf("step %d: unknown op %v", i, s["op"])
				}
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("step %d %v: %s\n got %v\nwant %v", i, s, k, got, want)
					}
				}
			}
		})
	}
	for _, c := range doc["negative"].([]any) {
		c := obj(c)
		t.Run("negative/"+c["id"].(string), func(t *testing.T) {
			in := obj(c["input"])
			if in["operation"] != "drv1.parse" {
				t.Fatalf("unknown operation %v", in["operation"])
			}
			_, err := ParseFrame(hx(t, in["frame"]))
			if got := errName(err); got != c["expected_error"] {
				t.Fatalf("got %q (%v), want %s", got, err, c["expected_error"])
			}
		})
	}
}
