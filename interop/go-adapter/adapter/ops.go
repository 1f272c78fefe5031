package adapter

import (
	"bytes"
	"fmt"
	"sort"

	"semafore.local/goadapter/live"
	"semafore.local/goadapter/protocol"
)

// Handler implements one operation.
type Handler func(a *Adapter, args Args) (any, error)

// session is one Double Ratchet session behind a handle, with its entropy source (scripted
// in vectors, the OS CSPRNG otherwise).
type session struct {
	ratchet  *protocol.Ratchet
	scripted *protocol.ScriptedEntropy
}

func (s *session) entropy() protocol.Entropy {
	if s.scripted != nil {
		return s.scripted
	}
	return protocol.SystemEntropy{}
}

// Adapter is the state of one adapter process: sessions by handle, and the live devices
// (package live) of the live interop gate.
type Adapter struct {
	sessions map[string]*session
	nextID   int
	ops      map[string]Handler
	live     *live.Host
}

// New builds an adapter with every operation registered.
func New() *Adapter {
	a := &Adapter{sessions: map[string]*session{}, live: live.NewHost()}
	a.ops = map[string]Handler{
		"capabilities":   opCapabilities,
		"spk.sign":       opSPKSign,
		"x3dh.initiate":  opX3DHInitiate,
		"x3dh.respond":   opX3DHRespond,
		"smx1.parse":     opSMX1Parse,
		"drv1.parse":     opDRV1Parse,
		"dr.init":        opDRInit,
		"dr.encrypt":     opDREncrypt,
		"dr.decrypt":     opDRDecrypt,
		"session.digest": opSessionDigest,
		"session.close":  opSessionClose,
	}
	for name, h := range primitiveOps {
		a.ops[name] = h
	}
	for name, h := range liveOps {
		a.ops[name] = h
	}
	for name, h := range extraOps {
		a.ops[name] = h
	}
	return a
}

// Ops lists the implemented operations, sorted.
func (a *Adapter) Ops() []string {
	names := make([]string, 0, len(a.ops))
	for n := range a.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Dispatch runs one operation; an unknown one is Unsupported (SPEC §7).
func (a *Adapter) Dispatch(op string, args Args) (any, error) {
	h, ok := a.ops[op]
	if !ok {
		return nil, &protocol.Error{Name: protocol.ErrUnsupported, Field: "op", Detail: fmt.Sprintf("operation %q is not implemented", op)}
	}
	return h(a, args)
}

func opCapabilities(a *Adapter, _ Args) (any, error) {
	return map[string]any{"name": Name, "version": Version, "protocol": "SemaFore wire protocol v1", "ops": a.Ops()}, nil
}

func keyID(args Args, name string) ([]byte, error) {
	s, err := args.String(name)
	if err != nil {
		return nil, err
	}
	id := []byte(s)
	if err := protocol.ValidateKeyID(id, args.field(name)); err != nil {
		return nil, err
	}
	return id, nil
}

func opSPKSign(_ *Adapter, args Args) (any, error) {
	sik, err := args.Key("sik_private", 32)
	if err != nil {
		return nil, err
	}
	ik, err := args.PublicKey("ik_public", 32, protocol.ErrInvalidKey)
	if err != nil {
		return nil, err
	}
	spk, err := args.PublicKey("spk_public", 32, protocol.ErrInvalidKey)
	if err != nil {
		return nil, err
	}
	id, err := keyID(args, "key_id")
	if err != nil {
		return nil, err
	}
	sig, err := protocol.SignSPK(sik, id, spk, ik)
	if err != nil {
		return nil, err
	}
	return map[string]any{"sig": hexOf(sig)}, nil
}

func identityArg(args Args, name string) (protocol.IdentityKeys, error) {
	o, err := args.Object(name)
	if err != nil {
		return protocol.IdentityKeys{}, err
	}
	ik, err := o.Key("ik_private", 32)
	if err != nil {
		return protocol.IdentityKeys{}, err
	}
	sik, err := o.Key("sik_private", 32)
	if err != nil {
		return protocol.IdentityKeys{}, err
	}
	return protocol.NewIdentityKeys(ik, sik)
}

// bundleArg reads a key bundle (SPEC §1). Public keys must be 32 bytes; the signature is
// taken at any length so that a truncated signature is InvalidSignature, as SPEC §2 step 1
// rejects it, not a request error.
func bundleArg(args Args, name string) (protocol.Bundle, error) {
	var b protocol.Bundle
	o, err := args.Object(name)
	if err != nil {
		return b, err
	}
	if b.UserID, err = o.String("user_id"); err != nil {
		return b, err
	}
	if b.DeviceID, err = o.String("device_id"); err != nil {
		return b, err
	}
	if b.IK, err = o.PublicKey("ik", 32, protocol.ErrInvalidKey); err != nil {
		return b, err
	}
	if b.SIK, err = o.PublicKey("sik", 32, protocol.ErrInvalidSignature); err != nil {
		return b, err
	}
	spk, err := o.Object("spk")
	if err != nil {
		return b, err
	}
	if s, err := spk.String("key_id"); err != nil {
		return b, err
	} else {
		b.SPK.KeyID = []byte(s)
	}
	if b.SPK.Pub, err = spk.PublicKey("pub", 32, protocol.ErrInvalidKey); err != nil {
		return b, err
	}
	if b.SPK.Sig, err = spk.Bytes("sig"); err != nil {
		return b, err
	}
	if opk, ok, err := o.OptObject("opk"); err != nil {
		return b, err
	} else if ok {
		ref := &protocol.PrekeyRef{}
		if s, err := opk.String("key_id"); err != nil {
			return b, err
		} else {
			ref.KeyID = []byte(s)
		}
		if ref.Pub, err = opk.PublicKey("pub", 32, protocol.ErrInvalidKey); err != nil {
			return b, err
		}
		b.OPK = ref
	}
	return b, nil
}

func agreementResult(ag protocol.Agreement) map[string]any {
	dh := []string{hexOf(ag.DH1), hexOf(ag.DH2), hexOf(ag.DH3)}
	if ag.DH4 != nil {
		dh = append(dh, hexOf(ag.DH4))
	}
	return map[string]any{"dh": dh, "sk": hexOf(ag.SK), "ad": hexOf(ag.AD), "rk0": hexOf(ag.RK0)}
}

func opX3DHInitiate(_ *Adapter, args Args) (any, error) {
	alice, err := identityArg(args, "identity")
	if err != nil {
		return nil, err
	}
	addr, err := args.String("local_address")
	if err != nil {
		return nil, err
	}
	bundle, err := bundleArg(args, "bundle")
	if err != nil {
		return nil, err
	}
	ekPriv, err := args.Key("ek_private", 32)
	if err != nil {
		return nil, err
	}
	nonce, err := args.Key("nonce", protocol.NonceSize)
	if err != nil {
		return nil, err
	}
	plaintext, err := args.Bytes("plaintext")
	if err != nil {
		return nil, err
	}
	ek, err := protocol.X25519KeyPair(ekPriv)
	if err != nil {
		return nil, err
	}
	init, err := protocol.InitiateWithEK(alice, addr, bundle, ek)
	if err != nil {
		return nil, err
	}
	res := agreementResult(init.Agreement)
	res["ek_public"] = hexOf(init.EK.Public)
	res["smx1"] = hexOf(init.Seal(plaintext, nonce))
	return res, nil
}

// prekeyTable is the responder's private prekeys from a request.
type prekeyTable struct {
	spk  []protocol.Prekey
	opks []protocol.Prekey
}

func findPrekey(list []protocol.Prekey, id []byte) (protocol.KeyPair, bool) {
	for _, p := range list {
		if bytes.Equal(p.KeyID, id) {
			return p.Pair, true
		}
	}
	return protocol.KeyPair{}, false
}

func (t prekeyTable) SignedPrekey(id []byte) (protocol.KeyPair, bool) { return findPrekey(t.spk, id) }

func (t prekeyTable) OneTimePrekey(id []byte) (protocol.KeyPair, bool) {
	return findPrekey(t.opks, id)
}

func privatePrekeyArg(o Args) (protocol.Prekey, error) {
	s, err := o.String("key_id")
	if err != nil {
		return protocol.Prekey{}, err
	}
	priv, err := o.Key("private", 32)
	if err != nil {
		return protocol.Prekey{}, err
	}
	pair, err := protocol.X25519KeyPair(priv)
	return protocol.Prekey{KeyID: []byte(s), Pair: pair}, err
}

func opX3DHRespond(_ *Adapter, args Args) (any, error) {
	keys, err := args.Object("keys")
	if err != nil {
		return nil, err
	}
	bob, err := identityArg(args, "keys")
	if err != nil {
		return nil, err
	}
	var table prekeyTable
	spkArg, err := keys.Object("spk")
	if err != nil {
		return nil, err
	}
	spk, err := privatePrekeyArg(spkArg)
	if err != nil {
		return nil, err
	}
	table.spk = append(table.spk, spk)
	opks, err := keys.ObjectList("opks")
	if err != nil {
		return nil, err
	}
	for _, o := range opks {
		p, err := privatePrekeyArg(o)
		if err != nil {
			return nil, err
		}
		table.opks = append(table.opks, p)
	}
	addrB, err := args.String("local_address")
	if err != nil {
		return nil, err
	}
	remote, err := args.Object("remote")
	if err != nil {
		return nil, err
	}
	ikA, err := remote.PublicKey("ik", 32, protocol.ErrInvalidKey)
	if err != nil {
		return nil, err
	}
	sikA, err := remote.PublicKey("sik", 32, protocol.ErrInvalidKey)
	if err != nil {
		return nil, err
	}
	addrA, err := remote.String("address")
	if err != nil {
		return nil, err
	}
	data, err := args.Bytes("smx1")
	if err != nil {
		return nil, err
	}
	m, err := protocol.ParseSMX1(data)
	if err != nil {
		return nil, err
	}
	r, err := protocol.Respond(bob, addrB, table, ikA, sikA, addrA, m)
	if err != nil {
		return nil, err
	}
	res := agreementResult(r.Agreement)
	res["spk_key_id"] = string(m.SPKKeyID)
	res["opk_key_id"] = keyIDOrNull(m)
	res["plaintext"] = hexOf(r.Frame)
	return res, nil
}

func keyIDOrNull(m *protocol.SMX1) any {
	if !m.OPKUsed {
		return nil
	}
	return string(m.OPKKeyID)
}

func opSMX1Parse(_ *Adapter, args Args) (any, error) {
	data, err := args.Bytes("data")
	if err != nil {
		return nil, err
	}
	m, err := protocol.ParseSMX1(data)
	if err != nil {
		return nil, err
	}
	flags := 0
	if m.OPKUsed {
		flags = 1
	}
	return map[string]any{
		"flags": flags, "ek": hexOf(m.EK), "spk_key_id": string(m.SPKKeyID), "opk_key_id": keyIDOrNull(m),
		"nonce": hexOf(m.Nonce), "ciphertext": hexOf(m.Ciphertext),
	}, nil
}

func opDRV1Parse(_ *Adapter, args Args) (any, error) {
	data, err := args.Bytes("data")
	if err != nil {
		return nil, err
	}
	f, err := protocol.ParseFrame(data)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"ratchet_key": hexOf(f.DH), "pn": f.PN, "n": f.N, "nonce": hexOf(f.Nonce), "ciphertext": hexOf(f.Ciphertext),
	}, nil
}

// scriptedArg builds the session's scripted entropy from the ratchet_keys and nonces lists
// (contract: every fresh ratchet key pair and frame nonce comes from them, in order).
func scriptedArg(args Args) (*protocol.ScriptedEntropy, error) {
	keys, err := args.HexList("ratchet_keys", 32)
	if err != nil {
		return nil, err
	}
	nonces, err := args.HexList("nonces", protocol.NonceSize)
	if err != nil {
		return nil, err
	}
	s := protocol.NewScriptedEntropy()
	s.Push(protocol.PurposeRatchetKey, keys...)
	s.Push(protocol.PurposeNonce, nonces...)
	return s, nil
}

func opDRInit(a *Adapter, args Args) (any, error) {
	role, err := args.String("role")
	if err != nil {
		return nil, err
	}
	sk, err := args.Key("sk", 32)
	if err != nil {
		return nil, err
	}
	ad, err := args.Bytes("ad")
	if err != nil {
		return nil, err
	}
	s := &session{}
	if s.scripted, err = scriptedArg(args); err != nil {
		return nil, err
	}
	rk0 := protocol.RootKey0(sk)
	switch role {
	case "initiator":
		remote, err := args.Key("remote_ratchet_key", 32)
		if err != nil {
			return nil, err
		}
		if s.ratchet, err = protocol.InitAlice(rk0, ad, remote, s.entropy()); err != nil {
			return nil, err
		}
	case "responder":
		spkPriv, err := args.Key("spk_private", 32)
		if err != nil {
			return nil, err
		}
		spk, err := protocol.X25519KeyPair(spkPriv)
		if err != nil {
			return nil, err
		}
		s.ratchet = protocol.InitBob(rk0, ad, spk)
	default:
		return nil, protocol.Malformed("args.role", "role must be \"initiator\" or \"responder\", got %q", role)
	}
	return map[string]any{"session": a.addSession(s)}, nil
}

func (a *Adapter) addSession(s *session) string {
	a.nextID++
	handle := fmt.Sprintf("s%d", a.nextID)
	a.sessions[handle] = s
	return handle
}

func (a *Adapter) sessionArg(args Args) (*session, string, error) {
	handle, err := args.String("session")
	if err != nil {
		return nil, "", err
	}
	s, ok := a.sessions[handle]
	if !ok {
		return nil, "", &protocol.Error{Name: protocol.ErrNoSession, Field: "args.session", Detail: fmt.Sprintf("no session with handle %q", handle)}
	}
	return s, handle, nil
}

func opDREncrypt(a *Adapter, args Args) (any, error) {
	s, _, err := a.sessionArg(args)
	if err != nil {
		return nil, err
	}
	pt, err := args.Bytes("plaintext")
	if err != nil {
		return nil, err
	}
	// Scripted draws are consumed only by a successful encrypt: roll them back on failure.
	var rng protocol.Entropy = protocol.SystemEntropy{}
	var trial *protocol.ScriptedEntropy
	if s.scripted != nil {
		trial = s.scripted.Clone()
		rng = trial
	}
	frame, err := s.ratchet.Encrypt(pt, rng)
	if err != nil {
		return nil, err
	}
	if trial != nil {
		s.scripted = trial
	}
	return map[string]any{"frame": hexOf(frame)}, nil
}

func opDRDecrypt(a *Adapter, args Args) (any, error) {
	s, _, err := a.sessionArg(args)
	if err != nil {
		return nil, err
	}
	frame, err := args.Bytes("frame")
	if err != nil {
		return nil, err
	}
	pt, err := s.ratchet.Decrypt(frame)
	if err != nil {
		return nil, err
	}
	return map[string]any{"plaintext": hexOf(pt)}, nil
}

func opSessionDigest(a *Adapter, args Args) (any, error) {
	if args.Has("device") {
		return opLiveDigest(a, args) // a live device's current session with a remote
	}
	s, _, err := a.sessionArg(args)
	if err != nil {
		return nil, err
	}
	return map[string]any{"digest": hexOf(s.ratchet.Digest())}, nil
}

func opSessionClose(a *Adapter, args Args) (any, error) {
	_, handle, err := a.sessionArg(args)
	if err != nil {
		return nil, err
	}
	delete(a.sessions, handle)
	return map[string]any{}, nil
}
