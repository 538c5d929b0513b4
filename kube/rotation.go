package kube

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// RotationPhase is the step a cluster CA rotation has reached. The phases
// exist so that no client ever meets a certificate from a CA it does not
// trust:
//
//  1. TrustBoth: the new CA joins every trust bundle (the API server's
//     client CA file, kubelets, every kubeconfig); certificates still come
//     from the old CA.
//  2. IssueNew: certificates are re-issued by the new CA; bundles still
//     hold both, so holders of old certificates keep working.
//  3. Done: the old CA leaves the bundles.
//
// Each phase must have reached every holder before the next begins; the
// orchestrator (lifecycle) drives that, as TKGI's rotate-certificates does.
type RotationPhase int

const (
	TrustBoth RotationPhase = iota + 1
	IssueNew
	Done
)

func (p RotationPhase) String() string {
	switch p {
	case TrustBoth:
		return "trust-both"
	case IssueNew:
		return "issue-new"
	case Done:
		return "done"
	}
	return fmt.Sprintf("RotationPhase(%d)", int(p))
}

// ErrRotationDone is returned by Advance past the last phase.
var ErrRotationDone = errors.New("CA rotation already done")

// CARotation replaces a CA in phases.
type CARotation struct {
	Old, New *CA
	Phase    RotationPhase
}

// StartCARotation begins replacing the cluster CA with a new one of the
// same name, valid for validity, which must be positive (CAValidity is
// kubeadm's ten years).
func (p *PKI) StartCARotation(validity time.Duration) (*CARotation, error) {
	n, err := NewCA(p.ClusterCA.Cert.Subject.CommonName, validity)
	if err != nil {
		return nil, err
	}
	return &CARotation{Old: p.ClusterCA, New: n, Phase: TrustBoth}, nil
}

// TrustBundle is the PEM bundle every party must trust in this phase.
func (r *CARotation) TrustBundle() []byte {
	if r.Phase == Done {
		return CertPEM(r.New.Cert)
	}
	return bytes.Join([][]byte{CertPEM(r.Old.Cert), CertPEM(r.New.Cert)}, nil)
}

// Signer is the CA that issues certificates in this phase.
func (r *CARotation) Signer() *CA {
	if r.Phase == TrustBoth {
		return r.Old
	}
	return r.New
}

// Advance moves to the next phase. When it reaches Done, the PKI's cluster
// CA is the new one.
func (r *CARotation) Advance(p *PKI) error {
	if r.Phase >= Done {
		return ErrRotationDone
	}
	r.Phase++
	if r.Phase == Done {
		p.ClusterCA = r.New
	}
	return nil
}
