// Package trillian is the log's storage on a Trillian cluster: Trillian's
// log server and log signer, with their state in MySQL/MariaDB (or
// PostgreSQL, CockroachDB, Spanner), store and sequence the entries; the
// log decides what is an entry, signs its own checkpoints and serves the
// same API. This file connects to a Trillian log server and creates the
// tree a log runs on.
package trillian

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	tpb "github.com/google/trillian"
	tclient "github.com/google/trillian/client"
	"github.com/google/trillian/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Options says how to reach a Trillian log server.
type Options struct {
	// Address is the log server's gRPC address, host:port.
	Address string
	// Plaintext connects without TLS: only for a server on loopback or
	// behind a private network.
	Plaintext bool
	// CAFile is a PEM file of the certificate authorities that may have
	// issued the server's certificate (default: the system's).
	CAFile string
	// ServerName is the name the server's certificate must hold (default:
	// the host of Address).
	ServerName string
}

// Dial connects to the Trillian log server. It does not wait for the
// connection: the first call does.
func Dial(o Options) (*grpc.ClientConn, error) {
	if o.Address == "" {
		return nil, errors.New("no Trillian log server address")
	}
	creds := insecure.NewCredentials()
	if !o.Plaintext {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("the Trillian server's certificate authorities: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("the Trillian server's certificate authorities: no PEM certificate in %s", o.CAFile)
			}
		}
		creds = credentials.NewTLS(cfg)
	} else if o.CAFile != "" || o.ServerName != "" {
		return nil, errors.New("a plaintext connection to Trillian takes no certificate authorities or server name")
	}
	conn, err := grpc.NewClient(o.Address, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("couldn't connect to the Trillian log server %s: %w", o.Address, err)
	}
	return conn, nil
}

// CreateTree creates a new log tree on the Trillian server conn reaches,
// with Trillian's admin API, and initialises it (an empty tree, size 0).
// The log runs on the tree by its ID.
func CreateTree(ctx context.Context, conn grpc.ClientConnInterface, displayName, description string) (*tpb.Tree, error) {
	admin := tpb.NewTrillianAdminClient(conn)
	tree, err := admin.CreateTree(ctx, &tpb.CreateTreeRequest{Tree: &tpb.Tree{
		TreeState:   tpb.TreeState_ACTIVE,
		TreeType:    tpb.TreeType_LOG,
		DisplayName: displayName,
		Description: description,
		// Trillian signs a new root at least this often, even with no
		// new entries.
		MaxRootDuration: durationpb.New(time.Hour),
	}})
	if err != nil {
		return nil, fmt.Errorf("couldn't create the tree: %w", err)
	}
	logClient := tpb.NewTrillianLogClient(conn)
	if err := tclient.InitLog(ctx, tree, logClient); err != nil {
		return nil, fmt.Errorf("couldn't initialise tree %d: %w", tree.TreeId, err)
	}
	if _, err := LatestRoot(ctx, logClient, tree.TreeId); err != nil {
		return nil, fmt.Errorf("tree %d was created, but: %w", tree.TreeId, err)
	}
	return tree, nil
}

// LatestRoot returns the latest root Trillian's signer integrated for the
// tree.
func LatestRoot(ctx context.Context, c tpb.TrillianLogClient, treeID int64) (*types.LogRootV1, error) {
	resp, err := c.GetLatestSignedLogRoot(ctx, &tpb.GetLatestSignedLogRootRequest{LogId: treeID})
	if err != nil {
		return nil, fmt.Errorf("couldn't read the latest root of tree %d: %w", treeID, err)
	}
	var root types.LogRootV1
	if resp.SignedLogRoot == nil {
		return nil, fmt.Errorf("tree %d: the server returned no root", treeID)
	}
	if err := root.UnmarshalBinary(resp.SignedLogRoot.LogRoot); err != nil {
		return nil, fmt.Errorf("tree %d: the server returned a malformed root: %w", treeID, err)
	}
	return &root, nil
}
