package framework

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
)

func TestAuthorityIssuesVerifiableCertificates(t *testing.T) {
	ca, err := newAuthority("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := newAuthority("other-ca")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.issue(certRequest{CommonName: "kube-apiserver", Server: true,
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.issue(certRequest{CommonName: "admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range []*keyPair{server, client} {
		if _, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM); err != nil {
			t.Fatalf("certificate and key do not match: %v", err)
		}
	}

	pool := func(a *authority) *x509.CertPool {
		p := x509.NewCertPool()
		p.AddCert(a.cert)
		return p
	}
	cases := []struct {
		name   string
		pair   *keyPair
		opts   x509.VerifyOptions
		wantOK bool
	}{
		{"server cert for 127.0.0.1", server, x509.VerifyOptions{Roots: pool(ca), DNSName: "127.0.0.1"}, true},
		{"server cert for localhost", server, x509.VerifyOptions{Roots: pool(ca), DNSName: "localhost"}, true},
		{"server cert for another name", server, x509.VerifyOptions{Roots: pool(ca), DNSName: "example.com"}, false},
		{"client cert as client", client, x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true},
		{"client cert as server", client, x509.VerifyOptions{Roots: pool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false},
		{"another cluster's authority", client, x509.VerifyOptions{Roots: pool(other), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			block, _ := pem.Decode(tc.pair.CertPEM)
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cert.Verify(tc.opts)
			if (err == nil) != tc.wantOK {
				t.Errorf("Verify() = %v, want ok=%t", err, tc.wantOK)
			}
		})
	}

	block, _ := pem.Decode(client.CertPEM)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if cert.Subject.CommonName != "admin" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "system:masters" {
		t.Errorf("client subject = %v, want CN=admin O=system:masters", cert.Subject)
	}
}

func TestServiceAccountKeyPair(t *testing.T) {
	private, public, err := newServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := pem.Decode(private)
	key, err := x509.ParseECPrivateKey(pb.Bytes)
	if err != nil {
		t.Fatalf("private key: %v", err)
	}
	ub, _ := pem.Decode(public)
	pub, err := x509.ParsePKIXPublicKey(ub.Bytes)
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	if !key.PublicKey.Equal(pub) {
		t.Error("public key does not belong to the private key")
	}
}
