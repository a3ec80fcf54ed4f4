package graph

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/rampartmail/rampart/graph/model"
	"github.com/rampartmail/rampart/internal/apperr"
	"github.com/rampartmail/rampart/internal/ingest"
	"github.com/rampartmail/rampart/internal/request"
)

// MaxUploadFiles bounds the files of one uploadReports call.
const MaxUploadFiles = 100

// upload stores each file as an uploaded report input of the account. The
// store authorises the upload (and decides for which accounts' domains its
// reports may be stored); a file name that is not text refuses the whole
// call before anything is stored.
func (r *Resolver) upload(ctx context.Context, acct uuid.UUID, files []*graphql.Upload) ([]*model.UploadResult, error) {
	if len(files) > MaxUploadFiles {
		return nil, apperr.Invalid("files", "at most %d files per upload", MaxUploadFiles)
	}
	up, err := r.Store.BeginUpload(ctx, acct)
	if err != nil {
		return nil, err
	}
	for i, f := range files {
		if err := ingest.CheckFilename(fmt.Sprintf("files[%d].filename", i), f.Filename); err != nil {
			return nil, err
		}
	}
	out := make([]*model.UploadResult, 0, len(files))
	for _, f := range files {
		res := &model.UploadResult{Filename: f.Filename}
		out = append(out, res)
		raw, err := io.ReadAll(io.LimitReader(f.File, ingest.DefaultMaxSize+1))
		if err != nil {
			return nil, fmt.Errorf("read upload %q: %w", f.Filename, err)
		}
		acc, err := up.Add(ctx, ingest.UploadedFile{Filename: f.Filename, Raw: raw, Remote: request.FromContext(ctx).Client})
		var ae *apperr.Error
		switch {
		case errors.As(err, &ae):
			msg := ae.Message
			res.Error = &msg
			continue
		case err != nil:
			return nil, err
		}
		id := acc.BlobID.String()
		res.BlobID, res.Duplicate = &id, acc.Duplicate
	}
	return out, nil
}
