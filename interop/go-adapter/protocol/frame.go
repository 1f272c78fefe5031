package protocol

import "encoding/binary"

// DRV1Magic opens every Double Ratchet frame (SPEC §3).
var DRV1Magic = []byte("DRV1")

// FrameHeaderSize is the DR_V1 header length: magic, DHs.pub, PN, N, nonce.
const FrameHeaderSize = 56

// Frame is a parsed DR_V1 frame; Ciphertext includes the GCM tag.
type Frame struct {
	DH         []byte
	PN         uint32
	N          uint32
	Nonce      []byte
	Ciphertext []byte
}

// Header is bytes[0..56), authenticated by the message AEAD.
func (f *Frame) Header() []byte {
	h := make([]byte, 0, FrameHeaderSize)
	h = append(h, DRV1Magic...)
	h = append(h, f.DH...)
	h = append(h, u32(f.PN)...)
	h = append(h, u32(f.N)...)
	return append(h, f.Nonce...)
}

// Encode serialises the frame.
func (f *Frame) Encode() []byte { return append(f.Header(), f.Ciphertext...) }

// ParseFrame parses a DR_V1 frame; framing errors are MalformedEnvelope naming the field.
func ParseFrame(data []byte) (*Frame, error) {
	if err := checkMagic(data, DRV1Magic); err != nil {
		return nil, err
	}
	switch {
	case len(data) < 36:
		return nil, Malformed("dh", "truncated: ratchet key needs 32 bytes at offset 4")
	case len(data) < 40:
		return nil, Malformed("pn", "truncated at offset 36")
	case len(data) < 44:
		return nil, Malformed("n", "truncated at offset 40")
	case len(data) < FrameHeaderSize:
		return nil, Malformed("nonce", "truncated: nonce needs 12 bytes at offset 44")
	case len(data) < FrameHeaderSize+TagSize:
		return nil, Malformed("ciphertext", "truncated: %d bytes, shorter than the 16-byte tag", len(data)-FrameHeaderSize)
	}
	return &Frame{
		DH:         clone(data[4:36]),
		PN:         binary.BigEndian.Uint32(data[36:40]),
		N:          binary.BigEndian.Uint32(data[40:44]),
		Nonce:      clone(data[44:56]),
		Ciphertext: clone(data[56:]),
	}, nil
}
