package smtpd

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// TLSFromFiles returns a configuration for [Config.TLS] that serves the PEM
// certificate chain and key in the two files. The files are checked at most
// once a minute and read again when either changed, so that a renewed
// certificate is picked up without a restart; a renewal that cannot be read
// leaves the previous certificate in use.
func TLSFromFiles(certFile, keyFile string) (*tls.Config, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(time.Now()); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil
}

type certReloader struct {
	certFile, keyFile string

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]time.Time
	checkedAt time.Time
}

func (r *certReloader) modTimes() ([2]time.Time, error) {
	var st [2]time.Time
	for i, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, err
		}
		st[i] = fi.ModTime()
	}
	return st, nil
}

func (r *certReloader) load(now time.Time) error {
	st, err := r.modTimes()
	if err != nil {
		return fmt.Errorf("smtp TLS certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("smtp TLS certificate: %w", err)
	}
	r.cert, r.stamp, r.checkedAt = &cert, st, now
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.checkedAt) >= time.Minute {
		r.checkedAt = now
		if st, err := r.modTimes(); err == nil && st != r.stamp {
			_ = r.load(now)
		}
	}
	return r.cert, nil
}
