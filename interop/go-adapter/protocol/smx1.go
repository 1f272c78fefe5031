package protocol

import "bytes"

// SMX1Magic opens every X3DH bootstrap envelope (SPEC §2).
var SMX1Magic = []byte("SMX1")

// SMX1 is a parsed bootstrap envelope. Ciphertext includes the 16-byte GCM tag.
type SMX1 struct {
	OPKUsed    bool
	EK         []byte
	SPKKeyID   []byte
	OPKKeyID   []byte // empty iff !OPKUsed
	Nonce      []byte
	Ciphertext []byte
	headerLen  int
	raw        []byte
}

// Header is bytes[0 .. 41+L1+L2): the part of the envelope the AEAD authenticates.
func (m *SMX1) Header() []byte {
	if m.raw != nil {
		return m.raw[:m.headerLen]
	}
	return m.encodeHeader()
}

func (m *SMX1) encodeHeader() []byte {
	h := make([]byte, 0, 41+len(m.SPKKeyID)+len(m.OPKKeyID))
	h = append(h, SMX1Magic...)
	if m.OPKUsed {
		h = append(h, 0x01)
	} else {
		h = append(h, 0x00)
	}
	h = append(h, m.EK...)
	h = append(h, u16(len(m.SPKKeyID))...)
	h = append(h, m.SPKKeyID...)
	h = append(h, u16(len(m.OPKKeyID))...)
	return append(h, m.OPKKeyID...)
}

// Encode serialises the envelope (SPEC §2 layout).
func (m *SMX1) Encode() []byte {
	out := m.encodeHeader()
	out = append(out, m.Nonce...)
	return append(out, m.Ciphertext...)
}

func checkMagic(data, magic []byte) error {
	if len(data) < len(magic) {
		if bytes.HasPrefix(magic, data) {
			return Malformed("magic", "truncated: %d bytes, magic needs %d", len(data), len(magic))
		}
		return Malformed("magic", "not %q", magic)
	}
	if bytes.Equal(data[:len(magic)], magic) {
		return nil
	}
	if bytes.Equal(data[:len(magic)-1], magic[:len(magic)-1]) {
		return &Error{Name: ErrUnsupportedVersion, Field: "magic", Detail: "version byte 0x" + hexByte(data[len(magic)-1]) + " is not supported"}
	}
	return Malformed("magic", "not %q", magic)
}

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&15]})
}

// ParseSMX1 parses an SMX1 envelope; every framing error is MalformedEnvelope naming the
// field (a foreign version byte after "SMX" is UnsupportedVersion).
func ParseSMX1(data []byte) (*SMX1, error) {
	if err := checkMagic(data, SMX1Magic); err != nil {
		return nil, err
	}
	if len(data) < 5 {
		return nil, Malformed("flags", "truncated at offset 4")
	}
	m := &SMX1{}
	switch data[4] {
	case 0x00:
	case 0x01:
		m.OPKUsed = true
	default:
		return nil, Malformed("flags", "flags byte 0x%02x is neither 0x00 nor 0x01", data[4])
	}
	if len(data) < 37 {
		return nil, Malformed("ek", "truncated: EK_A needs 32 bytes at offset 5")
	}
	m.EK = clone(data[5:37])
	if len(data) < 39 {
		return nil, Malformed("spk_key_id_len", "truncated at offset 37")
	}
	l1 := int(data[37])<<8 | int(data[38])
	if l1 < 1 || l1 > 255 {
		return nil, Malformed("spk_key_id_len", "L1 = %d, must be 1..255", l1)
	}
	if len(data) < 39+l1 {
		return nil, Malformed("spk_key_id", "L1 = %d overruns the envelope", l1)
	}
	m.SPKKeyID = clone(data[39 : 39+l1])
	off := 39 + l1
	if len(data) < off+2 {
		return nil, Malformed("opk_key_id_len", "truncated at offset %d", off)
	}
	l2 := int(data[off])<<8 | int(data[off+1])
	if !m.OPKUsed && l2 != 0 {
		return nil, Malformed("opk_key_id_len", "L2 = %d but flags say no OPK", l2)
	}
	if m.OPKUsed && (l2 < 1 || l2 > 255) {
		return nil, Malformed("opk_key_id_len", "L2 = %d, must be 1..255 when flags say OPK used", l2)
	}
	off += 2
	if len(data) < off+l2 {
		return nil, Malformed("opk_key_id", "L2 = %d overruns the envelope", l2)
	}
	m.OPKKeyID = clone(data[off : off+l2])
	off += l2
	m.headerLen = off
	if len(data) < off+NonceSize {
		return nil, Malformed("nonce", "truncated: nonce needs 12 bytes at offset %d", off)
	}
	m.Nonce = clone(data[off : off+NonceSize])
	off += NonceSize
	if len(data) < off+TagSize {
		return nil, Malformed("ciphertext", "truncated: %d bytes, shorter than the 16-byte tag", len(data)-off)
	}
	m.Ciphertext = clone(data[off:])
	if err := ValidateKeyID(m.SPKKeyID, "spk_key_id"); err != nil {
		return nil, err
	}
	if m.OPKUsed {
		if err := ValidateKeyID(m.OPKKeyID, "opk_key_id"); err != nil {
			return nil, err
		}
	}
	m.raw = clone(data)
	return m, nil
}
