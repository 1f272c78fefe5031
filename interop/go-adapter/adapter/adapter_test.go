package adapter

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func answer(t *testing.T, a *Adapter, line string) map[string]any {
	t.Helper()
	raw, err := json.Marshal(a.HandleLine([]byte(line)))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEveryLineGetsExactlyOneAnswer(t *testing.T) {
	in := strings.Join([]string{
		`{"id": 1, "op": "capabilities", "args": {}}`,
		`not json`,
		`[1, 2]`,
		`{"id": "x", "op": "teleport", "args": {}}`,
		``,
		`{"id": 3, "op": "smx1.parse", "args": {}}`,
		`{"id": 4, "op": "smx1.parse", "args": null}`,
		`{"id": 5, "op": "dr.encrypt", "args": {"session": "s9", "plaintext": ""}}`,
	}, "\n") + "\n"
	var out bytes.Buffer
	if err := Serve(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []struct {
		id  string
		err string
	}{{"1", ""}, {"null", "MalformedEnvelope"}, {"null", "MalformedEnvelope"}, {`"x"`, "Unsupported"},
		{"3", "MalformedEnvelope"}, {"4", "MalformedEnvelope"}, {"5", "NoSession"}}
	if len(lines) != len(want) {
		t.Fatalf("%d answers for %d requests:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("answer %d is not JSON: %s", i, line)
		}
		if string(m["id"]) != want[i].id {
			t.Errorf("answer %d: id %s, want %s", i, m["id"], want[i].id)
		}
		var name string
		_ = json.Unmarshal(m["error"], &name)
		if name != want[i].err {
			t.Errorf("answer %d: error %q, want %q (%s)", i, name, want[i].err, line)
		}
	}
}

func TestCapabilitiesListExactlyTheRegisteredOps(t *testing.T) {
	a := New()
	m := answer(t, a, `{"id": 1, "op": "capabilities"}`)
	ops := m["result"].(map[string]any)["ops"].([]any)
	if len(ops) != len(a.ops) {
		t.Fatalf("capabilities lists %d ops, %d registered", len(ops), len(a.ops))
	}
	for _, op := range ops {
		if _, ok := a.ops[op.(string)]; !ok {
			t.Fatalf("listed op %v is not registered", op)
		}
	}
}

func TestMissingArgumentIsNamed(t *testing.T) {
	m := answer(t, New(), `{"id": 1, "op": "spk.sign", "args": {"sik_private": "00"}}`)
	if m["error"] != "MalformedEnvelope" || !strings.Contains(m["detail"].(string), "args.sik_private") {
		t.Fatalf("got %v", m)
	}
}

// The contract's own worked example (docs/adapter-contract.md, dr.init/dr.encrypt/dr.decrypt).
func TestContractExampleConversation(t *testing.T) {
	a := New()
	steps := []struct{ req, want string }{
		{`{"id": 7, "op": "dr.init", "args": {"role": "initiator", "sk": "1111111111111111111111111111111111111111111111111111111111111111", "ad": "abcd", "remote_ratchet_key": "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20", "ratchet_keys": ["3333333333333333333333333333333333333333333333333333333333333333"], "nonces": ["444444444444444444444444", "454545454545454545454545"]}}`,
			`{"session":"s1"}`},
		{`{"id": 8, "op": "dr.init", "args": {"role": "responder", "sk": "1111111111111111111111111111111111111111111111111111111111111111", "ad": "abcd", "spk_private": "2222222222222222222222222222222222222222222222222222222222222222", "ratchet_keys": ["5555555555555555555555555555555555555555555555555555555555555555"], "nonces": ["666666666666666666666666"]}}`,
			`{"session":"s2"}`},
		{`{"id": 9, "op": "dr.encrypt", "args": {"session": "s1", "plaintext": "68656c6c6f"}}`,
			`{"frame":"445256317b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b1400000000000000004444444444444444444444445eec2b83bb43887d1ee50842ca52cd526705f5072c"}`},
		{`{"id": 10, "op": "dr.decrypt", "args": {"session": "s2", "frame": "445256317b0d47d93427f8311160781c7c733fd89f88970aef490d8aa0ee19a4cb8a1b1400000000000000004444444444444444444444445eec2b83bb43887d1ee50842ca52cd526705f5072c"}}`,
			`{"plaintext":"68656c6c6f"}`},
		{`{"id": 12, "op": "session.digest", "args": {"session": "s2"}}`,
			`{"digest":"9ad76bf7f6e19299e9429322ed09ebcec2ab41c93a74ea14b1ca128e18078206"}`},
		{`{"id": 15, "op": "session.close", "args": {"session": "s2"}}`, `{}`},
	}
	for _, s := range steps {
		m := answer(t, a, s.req)
		got, _ := json.Marshal(m["result"])
		if m["ok"] != true || string(got) != s.want {
			t.Fatalf("%s\n got %v\nwant %s", s.req, m, s.want)
		}
	}
	if m := answer(t, a, `{"id": 16, "op": "session.digest", "args": {"session": "s2"}}`); m["error"] != "NoSession" {
		t.Fatalf("closed session still answers: %v", m)
	}
}

func TestLiveOperationsAreAdvertisedAndCheckTheirArguments(t *testing.T) {
	a := New()
	caps := answer(t, a, `{"id": 1, "op": "capabilities", "args": {}}`)
	ops := map[string]bool{}
	for _, op := range caps["result"].(map[string]any)["ops"].([]any) {
		ops[op.(string)] = true
	}
	for _, op := range []string{"live.device.create", "live.register", "live.send", "live.receive", "live.reinstall", "live.close", "session.digest"} {
		if !ops[op] {
			t.Errorf("capabilities lack %s", op)
		}
	}
	created := answer(t, a, `{"id": 2, "op": "live.device.create", "args": {"user_id": "alice", "device_id": "phone", "seed": "s", "opk_count": 3}}`)
	result := created["result"].(map[string]any)
	if result["device"] != "alice:phone" || result["bundle"].(map[string]any)["opk_count"] != 3.0 {
		t.Fatalf("create: %v", created)
	}
	same := answer(t, New(), `{"id": 2, "op": "live.device.create", "args": {"user_id": "alice", "device_id": "phone", "seed": "s", "opk_count": 3}}`)
	if same["result"].(map[string]any)["bundle"].(map[string]any)["ik"] != result["bundle"].(map[string]any)["ik"] {
		t.Fatal("a seed makes the install reproducible")
	}
	for line, want := range map[string]string{
		`{"id": 3, "op": "live.device.create", "args": {"user_id": "alice", "device_id": "phone"}}`:                                         "MalformedEnvelope (field: args.device_id)",
		`{"id": 4, "op": "live.device.create", "args": {"user_id": "bob", "device_id": "x", "opk_count": 101}}`:                             "field: args.opk_count",
		`{"id": 5, "op": "live.send", "args": {"device": "carol:phone", "to": "bob", "plaintext": "00", "message_id": "m"}}`:                "NoSession (field: args.device)",
		`{"id": 6, "op": "live.send", "args": {"device": "alice:phone", "to": "bob", "plaintext": "00", "message_id": "m"}}`:                "NoSession (field: args.device)",
		`{"id": 7, "op": "live.receive", "args": {"device": "alice:phone", "order": "sideways"}}`:                                           "field: args.order",
		`{"id": 8, "op": "live.send", "args": {"device": "alice:phone", "to": "bob", "plaintext": "zz", "message_id": "m"}}`:                "field: args.plaintext",
		`{"id": 9, "op": "live.send", "args": {"device": "alice:phone", "to": "bob", "plaintext": "", "message_id": "m", "deliver": "no"}}`: "field: args.deliver",
		`{"id": 10, "op": "live.register", "args": {"device": "alice:phone", "relay": "ftp://x", "org": "o", "otp": "0"}}`:                  "field: args.relay",
		`{"id": 11, "op": "session.digest", "args": {"device": "alice:phone", "remote": "bob:phone"}}`:                                      "NoSession (field: args.remote)",
	} {
		got := answer(t, a, line)
		if got["ok"] != false || !strings.Contains(got["error"].(string)+" "+got["detail"].(string), strings.Split(want, " ")[0]) ||
			!strings.Contains(got["detail"].(string), strings.TrimPrefix(want, strings.Split(want, " ")[0]+" ")) {
			t.Errorf("%s\n got %v\nwant %s", line, got, want)
		}
	}
	if closed := answer(t, a, `{"id": 12, "op": "live.close", "args": {"device": "alice:phone"}}`); closed["ok"] != true {
		t.Fatalf("close: %v", closed)
	}
	if again := answer(t, a, `{"id": 13, "op": "live.close", "args": {"device": "alice:phone"}}`); again["error"] != "NoSession" {
		t.Fatalf("a closed device is gone: %v", again)
	}
}
