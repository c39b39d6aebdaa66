module github.com/guestmsg/messaging

go 1.26.8

require github.com/golang-migrate/migrate/v4 v4.20.1

require (
	github.com/lib/pq v1.12.3 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
