package tlspsk

import "strconv"

// alert is an AlertDescription (RFC 8446 §6). In TLS 1.3 every alert but
// close_notify and user_canceled is fatal, whatever its level byte says.
type alert uint8

const (
	alertCloseNotify          alert = 0
	alertUnexpectedMessage    alert = 10
	alertBadRecordMAC         alert = 20
	alertRecordOverflow       alert = 22
	alertHandshakeFailure     alert = 40
	alertIllegalParameter     alert = 47
	alertDecodeError          alert = 50
	alertDecryptError         alert = 51
	alertProtocolVersion      alert = 70
	alertInternalError        alert = 80
	alertUserCanceled         alert = 90
	alertMissingExtension     alert = 109
	alertUnsupportedExtension alert = 110
	alertUnknownPSKIdentity   alert = 115
)

// Alert levels (§6); the receiver ignores them in TLS 1.3.
const (
	alertLevelWarning = 1
	alertLevelFatal   = 2
)

var alertNames = map[uint8]string{
	0:   "close_notify",
	10:  "unexpected_message",
	20:  "bad_record_mac",
	22:  "record_overflow",
	40:  "handshake_failure",
	42:  "bad_certificate",
	43:  "unsupported_certificate",
	44:  "certificate_revoked",
	45:  "certificate_expired",
	46:  "certificate_unknown",
	47:  "illegal_parameter",
	48:  "unknown_ca",
	49:  "access_denied",
	50:  "decode_error",
	51:  "decrypt_error",
	70:  "protocol_version",
	71:  "insufficient_security",
	80:  "internal_error",
	86:  "inappropriate_fallback",
	90:  "user_canceled",
	109: "missing_extension",
	110: "unsupported_extension",
	112: "unrecognized_name",
	113: "bad_certificate_status_response",
	115: "unknown_psk_identity",
	116: "certificate_required",
	120: "no_application_protocol",
}

func alertName(a uint8) string {
	if s, ok := alertNames[a]; ok {
		return s
	}
	return "alert(" + strconv.Itoa(int(a)) + ")"
}

func (a alert) String() string { return alertName(uint8(a)) }
