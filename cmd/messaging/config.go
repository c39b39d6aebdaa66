package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
)

// Config is the service's whole configuration, read once from the environment.
type Config struct {
	DatabaseURL        string
	ListenAddr         string
	AdminToken         string
	Windows            messaging.Windows
	PurgeInterval      time.Duration
	MaxBodyBytes       int64
	Attachments        messaging.AttachmentPolicy
	RateLimitPerMinute int
	DBMaxConns         int
	RequestTimeout     time.Duration
	ShutdownTimeout    time.Duration
	// Server timeouts against slow or idle clients, and the request header limit.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

// loadConfig reads the environment through getenv, applies the defaults, and reports every
// problem at once.
func loadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	str := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	integer := func(name string, def, min int) int {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s: want a whole number >= %d, got %q", name, min, v))
		}
		return n
	}
	days := func(name string, def int) int {
		n := integer(name, def, 0)
		if n > messaging.MaxWindowDays {
			errs = append(errs, fmt.Errorf("%s: want at most %d days, got %d", name, messaging.MaxWindowDays, n))
		}
		return n
	}
	duration := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive Go duration such as 1h or 30s, got %q", name, v))
		}
		return d
	}
	c := Config{
		DatabaseURL: getenv("DATABASE_URL"),
		ListenAddr:  str("LISTEN_ADDR", ":8080"),
		AdminToken:  strings.TrimSpace(getenv("ADMIN_TOKEN")), // a secrets file's newline, say
		Windows: messaging.Windows{
			GuestDays:         days("GUEST_WINDOW_DAYS", messaging.DefaultWindows.GuestDays),
			PropertySendDays:  days("PROPERTY_SEND_DAYS", messaging.DefaultWindows.PropertySendDays),
			PropertyReplyDays: days("PROPERTY_REPLY_DAYS", messaging.DefaultWindows.PropertyReplyDays),
			RetentionDays:     days("RETENTION_DAYS", messaging.DefaultWindows.RetentionDays),
		},
		PurgeInterval:      duration("PURGE_INTERVAL", time.Hour),
		MaxBodyBytes:       int64(integer("MAX_BODY_BYTES", 2<<20, 1)),
		RateLimitPerMinute: integer("RATE_LIMIT_PER_MINUTE", 600, 0),
		DBMaxConns:         integer("DB_MAX_CONNS", 16, 1),
		RequestTimeout:     duration("REQUEST_TIMEOUT", 10*time.Second),
		ShutdownTimeout:    duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		ReadHeaderTimeout:  duration("READ_HEADER_TIMEOUT", 5*time.Second),
		ReadTimeout:        duration("READ_TIMEOUT", 30*time.Second),
		WriteTimeout:       duration("WRITE_TIMEOUT", 30*time.Second),
		IdleTimeout:        duration("IDLE_TIMEOUT", 120*time.Second),
		MaxHeaderBytes:     integer("MAX_HEADER_BYTES", 64<<10, 1024),
	}
	c.Attachments = attachmentPolicy(getenv, c.MaxBodyBytes, &errs)
	if err := checkDatabaseURL(c.DatabaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.AdminToken == "" && getenv("ADMIN_TOKEN") != "" {
		errs = append(errs, errors.New("ADMIN_TOKEN: only white space; unset it to turn the admin API off"))
	}
	if c.MaxHeaderBytes > http.DefaultMaxHeaderBytes {
		errs = append(errs, fmt.Errorf("MAX_HEADER_BYTES: want at most %d", http.DefaultMaxHeaderBytes))
	}
	if c.AdminToken != "" && utf8.RuneCountInString(c.AdminToken) < 16 {
		errs = append(errs, errors.New("ADMIN_TOKEN: use at least 16 characters"))
	}
	if c.WriteTimeout > 0 && c.RequestTimeout > c.WriteTimeout-httpapi.AnswerMargin {
		errs = append(errs, fmt.Errorf("REQUEST_TIMEOUT: must be at least %v shorter than WRITE_TIMEOUT, so that its 503 can still be written", httpapi.AnswerMargin))
	}
	if c.Windows.RetentionDays < c.Windows.GuestDays {
		errs = append(errs, errors.New("RETENTION_DAYS: must not be shorter than GUEST_WINDOW_DAYS"))
	}
	return c, errors.Join(errs...)
}

// checkDatabaseURL checks that dsn is a PostgreSQL URL, as the migrations and lib/pq read it,
// before anything else parses it: their errors quote the whole URL, password included. Its own
// errors never repeat the URL or a part of it.
func checkDatabaseURL(dsn string) error {
	if dsn == "" {
		return errors.New("DATABASE_URL: required (make run provisions a local PostgreSQL when it is unset)")
	}
	// The scheme as written: url.Parse lowers its case, the migrations' driver registry does not.
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return errors.New("DATABASE_URL: want a URL starting postgres:// or postgresql://")
	}
	if _, err := url.Parse(dsn); err != nil {
		return errors.New("DATABASE_URL: not a valid URL; percent-encode special characters of the user name " +
			"and password (% as %25, @ as %40, / as %2F, : as %3A) and check the port " +
			"(the value is not repeated here, as it may hold a password)")
	}
	return nil
}

// logFields describes the configuration for the start-up log, with the secrets masked.
func (c Config) logFields() []any {
	return []any{
		"listen_addr", c.ListenAddr, "database_url", maskDSN(c.DatabaseURL), "admin_api", c.AdminToken != "",
		"guest_window_days", c.Windows.GuestDays, "property_send_days", c.Windows.PropertySendDays,
		"property_reply_days", c.Windows.PropertyReplyDays, "retention_days", c.Windows.RetentionDays,
		"purge_interval", c.PurgeInterval.String(), "max_body_bytes", c.MaxBodyBytes,
		"rate_limit_per_minute", c.RateLimitPerMinute, "db_max_conns", c.DBMaxConns,
		"request_timeout", c.RequestTimeout.String(), "shutdown_timeout", c.ShutdownTimeout.String(),
		"read_header_timeout", c.ReadHeaderTimeout.String(), "read_timeout", c.ReadTimeout.String(),
		"write_timeout", c.WriteTimeout.String(), "idle_timeout", c.IdleTimeout.String(),
		"max_header_bytes", c.MaxHeaderBytes,
		"attachment_types", strings.Join(c.Attachments.Types, ","), "attachment_max_bytes", c.Attachments.MaxBytes,
	}
}

// uploadOverhead is room in a request body for an upload's fields besides file_content.
const uploadOverhead = 16 << 10

// attachmentPolicy reads ATTACHMENT_TYPES (a comma-separated list of media types, each one that
// content sniffing recognises) and ATTACHMENT_MAX_BYTES, whose upload must fit MAX_BODY_BYTES once
// base64-encoded.
func attachmentPolicy(getenv func(string) string, maxBody int64, errs *[]error) messaging.AttachmentPolicy {
	p := messaging.AttachmentPolicy{
		Types:    slices.Clone(messaging.DefaultAttachmentPolicy.Types),
		MaxBytes: messaging.DefaultAttachmentPolicy.MaxBytes,
	}
	if v := getenv("ATTACHMENT_TYPES"); v != "" {
		p.Types = nil
		for _, t := range strings.Split(v, ",") {
			t = strings.ToLower(strings.TrimSpace(t))
			if !messaging.Sniffable(t) {
				*errs = append(*errs, fmt.Errorf("ATTACHMENT_TYPES: %q cannot be recognised by content sniffing; use some of image/png, image/jpeg, image/gif, image/webp, image/bmp, application/pdf", t))
				continue
			}
			if !slices.Contains(p.Types, t) {
				p.Types = append(p.Types, t)
			}
		}
	}
	if v := getenv("ATTACHMENT_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			*errs = append(*errs, fmt.Errorf("ATTACHMENT_MAX_BYTES: want a whole number >= 1, got %q", v))
			return p
		}
		p.MaxBytes = n
	}
	if need := (p.MaxBytes+2)/3*4 + uploadOverhead; p.MaxBytes > maxBody || need > maxBody {
		*errs = append(*errs, fmt.Errorf("ATTACHMENT_MAX_BYTES: an upload of %d bytes needs a body of %d bytes; raise MAX_BODY_BYTES (%d) or lower ATTACHMENT_MAX_BYTES", p.MaxBytes, need, maxBody))
	}
	return p
}
