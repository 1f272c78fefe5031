package relay

// Request and answer bodies of docs/server.md (docs/openapi.json). Byte fields are []byte,
// which encoding/json writes and reads as standard base64 with padding, as the relay wants.

// LoginRequest is the body of POST /v1/auth/login.
type LoginRequest struct {
	OrgID    string `json:"org_id"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	OTP      string `json:"otp"`
	// TOTP is an admin's second factor (ADR-0161), omitted for members.
	TOTP string `json:"totp,omitempty"`
}

// TokenPair is the login / refresh answer.
type TokenPair struct {
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token"`
	ExpiresIn      int    `json:"expires_in"`
	OrgID          string `json:"org_id"`
	UserID         string `json:"user_id"`
	DeviceID       string `json:"device_id"`
	Role           string `json:"role"`
	RegistrationID int64  `json:"registration_id"`
}

// SignedPrekey is a signed prekey as published and as bundles carry it.
type SignedPrekey struct {
	KeyID string `json:"key_id"`
	Pub   []byte `json:"pub"`
	Sig   []byte `json:"sig"`
}

// OPK is a one-time prekey's public half.
type OPK struct {
	KeyID string `json:"key_id"`
	Pub   []byte `json:"pub"`
}

// KeyUpload is the body of PUT /v1/keys.
type KeyUpload struct {
	IK   []byte       `json:"ik"`
	SIK  []byte       `json:"sik"`
	SPK  SignedPrekey `json:"spk"`
	OPKs []OPK        `json:"opks"`
}

// KeyCount is the answer of GET /v1/keys and PUT /v1/keys.
type KeyCount struct {
	OPKCount int    `json:"opk_count"`
	SPKKeyID string `json:"spk_key_id"`
}

// DeviceBundle is one device's public bundle with at most one claimed OPK.
type DeviceBundle struct {
	UserID         string       `json:"user_id"`
	DeviceID       string       `json:"device_id"`
	RegistrationID int64        `json:"registration_id"`
	IK             []byte       `json:"ik"`
	SIK            []byte       `json:"sik"`
	SPK            SignedPrekey `json:"spk"`
	OPK            *OPK         `json:"opk"`
}

// BundlesOut is the answer of GET /v1/keys/{user}[/{device}].
type BundlesOut struct {
	UserID  string         `json:"user_id"`
	Devices []DeviceBundle `json:"devices"`
}

// DeviceInfo is one entry of GET /v1/devices.
type DeviceInfo struct {
	DeviceID       string  `json:"device_id"`
	RegistrationID int64   `json:"registration_id"`
	CreatedAt      float64 `json:"created_at"`
}

// Envelope is one recipient device's envelope of a send.
type Envelope struct {
	DeviceID       string `json:"device_id"`
	RegistrationID int64  `json:"registration_id"`
	Body           []byte `json:"body"`
}

// SendRequest is the body of PUT /v1/messages/{user}.
type SendRequest struct {
	MessageID string     `json:"message_id"`
	Envelopes []Envelope `json:"envelopes"`
}

// Delivery names the queue entry an accepted envelope became.
type Delivery struct {
	DeviceID   string `json:"device_id"`
	DeliveryID string `json:"delivery_id"`
}

// SendResponse is the answer of an accepted send.
type SendResponse struct {
	MessageID  string     `json:"message_id"`
	Deliveries []Delivery `json:"deliveries"`
}

// QueuedEnvelope is one pending envelope of GET /v1/messages.
type QueuedEnvelope struct {
	DeliveryID     string  `json:"delivery_id"`
	MessageID      string  `json:"message_id"`
	Kind           string  `json:"kind"`
	SenderUserID   string  `json:"sender_user_id"`
	SenderDeviceID string  `json:"sender_device_id"`
	Body           []byte  `json:"body"`
	EnvelopeHash   []byte  `json:"envelope_hash"`
	ReceivedAt     float64 `json:"received_at"`
}

// EnvelopePage is the answer of GET /v1/messages.
type EnvelopePage struct {
	Envelopes []QueuedEnvelope `json:"envelopes"`
	More      bool             `json:"more"`
}

// Identity is one device's identity keys and registration id (GET /v1/identities/...).
type Identity struct {
	UserID         string `json:"user_id"`
	DeviceID       string `json:"device_id"`
	RegistrationID int64  `json:"registration_id"`
	IK             []byte `json:"ik"`
	SIK            []byte `json:"sik"`
}

// BroadcastRecipient is one user's envelopes of a broadcast.
type BroadcastRecipient struct {
	UserID    string     `json:"user_id"`
	Envelopes []Envelope `json:"envelopes"`
}

// BroadcastRequest is the body of POST /v1/broadcasts.
type BroadcastRequest struct {
	MessageID  string               `json:"message_id"`
	Recipients []BroadcastRecipient `json:"recipients"`
}

// ScreenshotReport is the body of POST /v1/screenshots (ADR-0159: a hash, never the image).
type ScreenshotReport struct {
	PeerUserID string   `json:"peer_user_id"`
	SHA256     []byte   `json:"screenshot_sha256"`
	MessageIDs []string `json:"message_ids"`
	CapturedAt float64  `json:"captured_at"`
}
