package protocol

import (
	"bytes"
	"fmt"
)

// Key-generation entropy purposes (docs/protocol.md lists the same names).
const (
	PurposeIdentityKey = "identity_key"
	PurposeSigningKey  = "signing_key"
	PurposeSPK         = "spk"
	PurposeOPK         = "opk"
)

// PreviousSPKs is how many rotated signed prekeys a device keeps so an SMX1 in flight across
// a rotation still bootstraps (the reference's documented choice).
const PreviousSPKs = 3

// Device is one device's private key material (SPEC §1): identity keys, the current signed
// prekey (plus a few previous ones) and the one-time prekeys not yet used.
type Device struct {
	UserID, DeviceID string
	Keys             IdentityKeys
	SPKs             []Prekey // current first
	SPKSig           []byte
	OPKs             []Prekey
	nextOPK          int
}

// GenerateDevice draws a device's keys: IK, SIK, an SPK "spk-1" and opkCount OPKs "opk-<n>".
func GenerateDevice(userID, deviceID string, opkCount int, rng Entropy) (*Device, error) {
	ik, err := rng.RandomBytes(32, PurposeIdentityKey)
	if err != nil {
		return nil, err
	}
	reportDrawn(PurposeIdentityKey, ik)
	sik, err := rng.RandomBytes(32, PurposeSigningKey)
	if err != nil {
		return nil, err
	}
	reportDrawn(PurposeSigningKey, sik)
	keys, err := NewIdentityKeys(ik, sik)
	if err != nil {
		return nil, err
	}
	d := &Device{UserID: userID, DeviceID: deviceID, Keys: keys}
	if err := d.RotateSPK([]byte("spk-1"), rng); err != nil {
		return nil, err
	}
	return d, d.AddOPKs(opkCount, rng)
}

// RotateSPK makes a fresh signed prekey current, keeping PreviousSPKs older ones.
func (d *Device) RotateSPK(keyID []byte, rng Entropy) error {
	priv, err := rng.RandomBytes(32, PurposeSPK)
	if err != nil {
		return err
	}
	reportDrawn(PurposeSPK, priv)
	pair, err := X25519KeyPair(priv)
	if err != nil {
		return err
	}
	sig, err := SignSPK(d.Keys.SIK, keyID, pair.Public, d.Keys.IK.Public)
	if err != nil {
		return err
	}
	d.SPKs = append([]Prekey{{KeyID: clone(keyID), Pair: pair}}, d.SPKs...)
	if len(d.SPKs) > PreviousSPKs+1 {
		d.SPKs = d.SPKs[:PreviousSPKs+1]
	}
	d.SPKSig = sig
	return nil
}

// AddOPKs draws n more one-time prekeys.
func (d *Device) AddOPKs(n int, rng Entropy) error {
	for i := 0; i < n; i++ {
		priv, err := rng.RandomBytes(32, PurposeOPK)
		if err != nil {
			return err
		}
		reportDrawn(PurposeOPK, priv)
		pair, err := X25519KeyPair(priv)
		if err != nil {
			return err
		}
		d.nextOPK++
		d.OPKs = append(d.OPKs, Prekey{KeyID: []byte(fmt.Sprintf("opk-%d", d.nextOPK)), Pair: pair})
	}
	return nil
}

// Bundle is the public bundle with the given OPK (nil: none claimed).
func (d *Device) Bundle(opkID []byte) Bundle {
	spk := d.SPKs[0]
	b := Bundle{UserID: d.UserID, DeviceID: d.DeviceID, IK: d.Keys.IK.Public, SIK: d.Keys.SIKPub,
		SPK: SignedPrekey{KeyID: spk.KeyID, Pub: spk.Pair.Public, Sig: d.SPKSig}}
	if opkID != nil {
		if pair, ok := d.OneTimePrekey(opkID); ok {
			b.OPK = &PrekeyRef{KeyID: clone(opkID), Pub: pair.Public}
		}
	}
	return b
}

// Identity implements LocalDevice.
func (d *Device) Identity() IdentityKeys { return d.Keys }

// Address implements LocalDevice.
func (d *Device) Address() string { return d.UserID + ":" + d.DeviceID }

// SignedPrekey implements PrekeyLookup over the current and previous SPKs.
func (d *Device) SignedPrekey(id []byte) (KeyPair, bool) { return find(d.SPKs, id) }

// OneTimePrekey implements PrekeyLookup.
func (d *Device) OneTimePrekey(id []byte) (KeyPair, bool) { return find(d.OPKs, id) }

// ConsumeOneTimePrekey implements LocalDevice: a used OPK is deleted (SPEC §2).
func (d *Device) ConsumeOneTimePrekey(id []byte) {
	for i, p := range d.OPKs {
		if bytes.Equal(p.KeyID, id) {
			d.OPKs = append(d.OPKs[:i:i], d.OPKs[i+1:]...)
			return
		}
	}
}

func find(list []Prekey, id []byte) (KeyPair, bool) {
	for _, p := range list {
		if bytes.Equal(p.KeyID, id) {
			return p.Pair, true
		}
	}
	return KeyPair{}, false
}

// IdentityStore pins each remote device's identity keys on first use (SPEC §2: TOFU; a
// changed identity is UntrustedIdentity unless the caller accepts it).
type IdentityStore struct {
	pinned map[string][2][]byte
}

// Check pins (ik, sik) for address on first sight and afterwards requires the same keys.
func (s *IdentityStore) Check(address string, ik, sik []byte, acceptChange bool) error {
	if s.pinned == nil {
		s.pinned = map[string][2][]byte{}
	}
	old, ok := s.pinned[address]
	if ok && !(bytes.Equal(old[0], ik) && bytes.Equal(old[1], sik)) && !acceptChange {
		return newErr(ErrUntrustedIdentity, "identity", "the identity keys of %s changed", address)
	}
	s.pinned[address] = [2][]byte{clone(ik), clone(sik)}
	return nil
}

// Pinned returns the identity keys pinned for address, if any.
// Clone copies the pinned identities (a backup of the device's state).
func (s *IdentityStore) Clone() IdentityStore {
	c := IdentityStore{pinned: make(map[string][2][]byte, len(s.pinned))}
	for address, keys := range s.pinned {
		c.pinned[address] = keys
	}
	return c
}

func (s *IdentityStore) Pinned(address string) (ik, sik []byte, ok bool) {
	keys, ok := s.pinned[address]
	return keys[0], keys[1], ok
}
