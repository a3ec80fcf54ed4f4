package ingest

import (
	"encoding/json"

	"github.com/rampartmail/rampart/internal/report"
)

// maxBlobWarnings bounds the warnings kept for one blob.
const maxBlobWarnings = 200

// attachmentRefused is the warning code for an attachment of a blob that
// was refused while another was stored.
const attachmentRefused report.WarningCode = "attachment_refused"

// blobWarning is one element of report_blobs.warnings.
type blobWarning struct {
	Code    report.WarningCode `json:"code"`
	Element string             `json:"element,omitempty"`
	Detail  string             `json:"detail,omitempty"`
	Count   int                `json:"count"`
	// Attachment names the attachment concerned, in a blob with several.
	Attachment string `json:"attachment,omitempty"`
}

type warningList struct {
	list []blobWarning
}

func (l *warningList) add(attachment string, ws []report.Warning) {
	for _, w := range ws {
		if len(l.list) >= maxBlobWarnings {
			return
		}
		l.list = append(l.list, blobWarning{Code: w.Code, Element: w.Element, Detail: clip(w.Detail, maxTextField), Count: w.Count, Attachment: clip(attachment, maxTextField)})
	}
}

func (l *warningList) refused(attachment string, r *report.Refusal) {
	if len(l.list) < maxBlobWarnings {
		l.list = append(l.list, blobWarning{Code: attachmentRefused, Element: r.Element, Detail: clip(string(r.Reason)+": "+r.Detail, maxTextField), Count: 1, Attachment: clip(attachment, maxTextField)})
	}
}

func (l *warningList) json() []byte {
	if len(l.list) == 0 {
		return []byte("[]")
	}
	b, err := json.Marshal(l.list)
	if err != nil {
		return []byte("[]")
	}
	return b
}
