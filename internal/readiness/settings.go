package readiness

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The keys of the settings' text form (see [ParseSettings]).
const (
	keyWindow          = "window"
	keyNewSender       = "new-sender"
	keyMinDays         = "min-days"
	keyMinMessages     = "min-messages"
	keyQuarantineShare = "quarantine-unidentified"
	keyRejectShare     = "reject-unidentified"
)

// String is the settings' text form, every key given.
func (s Settings) String() string {
	return fmt.Sprintf("%s=%d,%s=%d,%s=%d,%s=%d,%s=%s,%s=%s",
		keyWindow, s.WindowDays, keyNewSender, s.NewSenderDays, keyMinDays, s.MinDays, keyMinMessages, s.MinMessages,
		keyQuarantineShare, strconv.FormatFloat(s.QuarantineUnidentified, 'f', -1, 64),
		keyRejectShare, strconv.FormatFloat(s.RejectUnidentified, 'f', -1, 64))
}

// ParseSettings reads comma-separated key=value pairs over the defaults:
// window (days, 7 to 366), new-sender (days, 1 to the window), min-days
// (1 to the window), min-messages (at least 1), quarantine-unidentified
// and reject-unidentified (percent, 0 to 100, reject's at most
// quarantine's). "" is the defaults.
func ParseSettings(text string) (Settings, error) {
	s := Defaults
	for part := range strings.SplitSeq(text, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Settings{}, fmt.Errorf("%q is not key=value", part)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		var err error
		switch k {
		case keyWindow:
			s.WindowDays, err = strconv.Atoi(v)
		case keyNewSender:
			s.NewSenderDays, err = strconv.Atoi(v)
		case keyMinDays:
			s.MinDays, err = strconv.Atoi(v)
		case keyMinMessages:
			s.MinMessages, err = strconv.ParseInt(v, 10, 64)
		case keyQuarantineShare:
			s.QuarantineUnidentified, err = strconv.ParseFloat(v, 64)
		case keyRejectShare:
			s.RejectUnidentified, err = strconv.ParseFloat(v, 64)
		default:
			return Settings{}, fmt.Errorf("unknown key %q (known: %s, %s, %s, %s, %s, %s)", k,
				keyWindow, keyNewSender, keyMinDays, keyMinMessages, keyQuarantineShare, keyRejectShare)
		}
		if err != nil {
			return Settings{}, fmt.Errorf("%s: %q is not a number", k, v)
		}
	}
	return s, s.check()
}

func (s Settings) check() error {
	share := func(v float64) bool { return v >= 0 && v <= 100 }
	switch {
	case s.WindowDays < 7 || s.WindowDays > 366:
		return fmt.Errorf("%s must be 7 to 366 days", keyWindow)
	case s.NewSenderDays < 1 || s.NewSenderDays > s.WindowDays:
		return fmt.Errorf("%s must be 1 day to the window (%d)", keyNewSender, s.WindowDays)
	case s.MinDays < 1 || s.MinDays > s.WindowDays:
		return fmt.Errorf("%s must be 1 day to the window (%d)", keyMinDays, s.WindowDays)
	case s.MinMessages < 1:
		return fmt.Errorf("%s must be at least 1", keyMinMessages)
	case !share(s.QuarantineUnidentified) || !share(s.RejectUnidentified):
		return errors.New("the unidentified shares must be percentages from 0 to 100")
	case s.RejectUnidentified > s.QuarantineUnidentified:
		return fmt.Errorf("%s must not exceed %s", keyRejectShare, keyQuarantineShare)
	}
	return nil
}
