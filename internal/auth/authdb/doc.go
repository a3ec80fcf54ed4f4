// Package authdb is the sqlc-generated access to the tables of package auth
// (users, refresh_tokens, api_tokens, login_failures). Edit
// internal/auth/queries.sql and regenerate; do not edit the generated files.
//
// Every time is a parameter taken from the service clock, never now(), so
// that tests can move time.
package authdb
