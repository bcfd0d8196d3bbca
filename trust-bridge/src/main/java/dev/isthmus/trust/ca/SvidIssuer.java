package dev.isthmus.trust.ca;

import io.grpc.Status;
import java.io.IOException;
import java.io.StringReader;
import java.math.BigInteger;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.regex.Pattern;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.sec.SECObjectIdentifiers;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.asn1.x9.X9ObjectIdentifiers;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;

/**
 * Signs workload certificates (X.509 SVIDs) from PKCS#10 requests with the trust domain's CA.
 * Every check refuses with the gRPC status and a message that says what is wrong: the CSR must be
 * PEM PKCS#10 with a valid self-signature and an ECDSA P-256 key, carry no SAN but the requested
 * SPIFFE ID, and the ID must be {@code spiffe://<this trust domain>/ns/<namespace>/sa/<account>}.
 *
 * <p>The certificate: the SPIFFE ID as the only URI SAN (critical), not a CA, key usage digital
 * signature (critical), extended key usage server and client auth, authority and subject key
 * identifiers, valid from a minute ago (clock skew) for the lifetime asked, at most the maximum and
 * never past the root.
 */
public final class SvidIssuer {

    public static final int MAX_CSR_CHARS = 16 * 1024;
    private static final Pattern SEGMENT = Pattern.compile("[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?");
    private static final SecureRandom RANDOM = new SecureRandom();
    /** Verifies CSR signatures: BouncyCastle's P-256 verify is faster than SunEC's here; signing stays with SunEC, which is faster at that. */
    private static final java.security.Provider VERIFY_PROVIDER = new org.bouncycastle.jce.provider.BouncyCastleProvider();

    /** A refusal: the gRPC status code, a metric reason and the message. */
    public static final class Refusal extends Exception {
        private final Status.Code code;
        private final String reason;

        public Refusal(Status.Code code, String reason, String message) {
            super(message);
            this.code = code;
            this.reason = reason;
        }

        public Status.Code code() {
            return code;
        }

        public String reason() {
            return reason;
        }

        public io.grpc.StatusRuntimeException toStatus() {
            return Status.fromCode(code).withDescription(getMessage()).asRuntimeException();
        }
    }

    /** An issued certificate. */
    public record Issued(X509Certificate certificate, String spiffeId) {
    }

    private SvidIssuer() {
    }

    /** Checks that {@code id} is a workload ID of {@code trustDomain}; returns it. */
    public static String checkSpiffeId(String id, String trustDomain) throws Refusal {
        if (id == null || id.isBlank()) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "bad_spiffe_id", "spiffe_id is empty; ask for spiffe://" + trustDomain
                    + "/ns/<namespace>/sa/<service-account>");
        }
        if (!id.startsWith("spiffe://")) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "bad_spiffe_id", "spiffe_id '" + id + "' does not start with spiffe://");
        }
        String rest = id.substring("spiffe://".length());
        int slash = rest.indexOf('/');
        String domain = slash < 0 ? rest : rest.substring(0, slash);
        if (!domain.equals(trustDomain)) {
            throw new Refusal(Status.Code.PERMISSION_DENIED, "foreign_trust_domain", "spiffe_id '" + id + "' is in trust domain '" + domain
                    + "'; this bridge issues only for '" + trustDomain + "'");
        }
        String[] path = slash < 0 ? new String[0] : rest.substring(slash + 1).split("/", -1);
        if (path.length != 4 || !path[0].equals("ns") || !path[2].equals("sa") || !SEGMENT.matcher(path[1]).matches()
                || !SEGMENT.matcher(path[3]).matches()) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "bad_spiffe_id", "spiffe_id '" + id + "' is not spiffe://" + trustDomain
                    + "/ns/<namespace>/sa/<service-account> (lower-case letters, digits, '.', '_', '-')");
        }
        return id;
    }

    /** Checks the request and signs it for {@code spiffeId} (already checked) with {@code root}. */
    public static Issued issue(EmbeddedRoot root, String csrPem, String spiffeId, Duration ttl) throws Refusal {
        return sign(root, checkCsr(csrPem, spiffeId), spiffeId, ttl);
    }

    /** Checks a request (see the class comment); returns its public key. */
    public static PublicKey checkCsr(String csrPem, String spiffeId) throws Refusal {
        if (csrPem == null || csrPem.isBlank()) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "malformed_csr", "csr_pem is empty; send a PEM 'CERTIFICATE REQUEST'");
        }
        if (csrPem.length() > MAX_CSR_CHARS) {
            throw new Refusal(Status.Code.RESOURCE_EXHAUSTED, "too_large", "csr_pem is " + csrPem.length() + " characters; at most "
                    + MAX_CSR_CHARS + " are accepted");
        }
        PKCS10CertificationRequest csr;
        try (var parser = new PEMParser(new StringReader(csrPem))) {
            Object o = parser.readObject();
            if (!(o instanceof PKCS10CertificationRequest r)) {
                throw new Refusal(Status.Code.INVALID_ARGUMENT, "malformed_csr", "csr_pem holds "
                        + (o == null ? "no PEM block" : "a " + o.getClass().getSimpleName()) + ", not a PEM 'CERTIFICATE REQUEST'");
            }
            csr = r;
        } catch (IOException | RuntimeException e) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "malformed_csr", "csr_pem is not a readable PEM PKCS#10 request: " + e.getMessage());
        }
        SubjectPublicKeyInfo spki = csr.getSubjectPublicKeyInfo();
        ASN1ObjectIdentifier alg = spki.getAlgorithm().getAlgorithm();
        if (!alg.equals(X9ObjectIdentifiers.id_ecPublicKey)) {
            String name = alg.equals(PKCSObjectIdentifiers.rsaEncryption) ? "RSA" : alg.getId();
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "wrong_key_type", "the CSR's key is " + name + "; only ECDSA P-256 keys are accepted");
        }
        var curve = spki.getAlgorithm().getParameters();
        if (curve == null || !(curve.toASN1Primitive().equals(SECObjectIdentifiers.secp256r1))) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "wrong_key_type", "the CSR's EC key is on curve " + curve
                    + "; only P-256 (secp256r1) is accepted");
        }
        PublicKey key;
        try {
            key = new JcaPEMKeyConverter().setProvider(VERIFY_PROVIDER).getPublicKey(spki);
            if (!selfSignatureValid(csr, key)) {
                throw new Refusal(Status.Code.INVALID_ARGUMENT, "bad_csr_signature",
                        "the CSR's signature does not verify with its own key (altered, or signed with another key)");
            }
        } catch (Refusal r) {
            throw r;
        } catch (Exception e) {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "bad_csr_signature", "the CSR's signature cannot be checked: " + e.getMessage());
        }
        for (String san : requestedSans(csr)) {
            if (!san.equals("URI:" + spiffeId)) {
                throw new Refusal(Status.Code.INVALID_ARGUMENT, "wrong_san", "the CSR asks for SAN " + san
                        + "; the only SAN allowed is the requested SPIFFE ID " + spiffeId);
            }
        }
        return key;
    }

    /**
     * Checks the request's self-signature with one Signature call (BouncyCastle's verifier-provider
     * path rebuilds the key and looks up providers for every request, which doubled the cost). Only ECDSA with SHA-256/384/512 is accepted, as the key must be P-256.
     */
    private static boolean selfSignatureValid(PKCS10CertificationRequest csr, PublicKey key) throws Refusal, java.security.GeneralSecurityException,
            IOException {
        ASN1ObjectIdentifier sigAlg = csr.getSignatureAlgorithm().getAlgorithm();
        String jdkName;
        if (sigAlg.equals(X9ObjectIdentifiers.ecdsa_with_SHA256)) {
            jdkName = "SHA256withECDSA";
        } else if (sigAlg.equals(X9ObjectIdentifiers.ecdsa_with_SHA384)) {
            jdkName = "SHA384withECDSA";
        } else if (sigAlg.equals(X9ObjectIdentifiers.ecdsa_with_SHA512)) {
            jdkName = "SHA512withECDSA";
        } else {
            throw new Refusal(Status.Code.INVALID_ARGUMENT, "bad_csr_signature", "the CSR is signed with algorithm " + sigAlg.getId()
                    + "; only ECDSA with SHA-256, SHA-384 or SHA-512 is accepted");
        }
        var verifier = java.security.Signature.getInstance(jdkName, VERIFY_PROVIDER);
        verifier.initVerify(key);
        verifier.update(csr.toASN1Structure().getCertificationRequestInfo().getEncoded(org.bouncycastle.asn1.ASN1Encoding.DER));
        try {
            return verifier.verify(csr.getSignature());
        } catch (java.security.SignatureException e) {
            return false;
        }
    }

    /** Signs a checked key for {@code spiffeId} with the embedded root. */
    public static Issued sign(EmbeddedRoot root, PublicKey key, String spiffeId, Duration ttl) throws Refusal {
        try {
            Instant now = Instant.now();
            Instant notAfter = now.plus(ttl);
            Instant rootEnd = root.certificate().getNotAfter().toInstant();
            if (notAfter.isAfter(rootEnd)) {
                notAfter = rootEnd;
            }
            String[] path = spiffeId.substring(spiffeId.indexOf("/ns/") + 1).split("/");
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(root.certificate(), new BigInteger(127, RANDOM).add(BigInteger.ONE),
                    Date.from(now.minusSeconds(60)), Date.from(notAfter),
                    new X500Name("O=" + root.trustDomain() + ",OU=" + path[1] + ",CN=" + path[3]), key);
            var utils = new JcaX509ExtensionUtils();
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
            b.addExtension(Extension.extendedKeyUsage, false,
                    new ExtendedKeyUsage(new KeyPurposeId[] {KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth}));
            b.addExtension(Extension.subjectAlternativeName, true, new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, spiffeId)));
            b.addExtension(Extension.authorityKeyIdentifier, false, utils.createAuthorityKeyIdentifier(root.certificate()));
            b.addExtension(Extension.subjectKeyIdentifier, false, utils.createSubjectKeyIdentifier(key));
            var signer = new JcaContentSignerBuilder("SHA256withECDSA").build(root.key());
            X509Certificate cert = new JcaX509CertificateConverter().getCertificate(b.build(signer));
            return new Issued(cert, spiffeId);
        } catch (Exception e) {
            throw new Refusal(Status.Code.INTERNAL, "signing_failed", "signing failed: " + e.getMessage());
        }
    }

    private static List<String> requestedSans(PKCS10CertificationRequest csr) {
        var out = new ArrayList<String>();
        for (var attr : csr.getAttributes(PKCSObjectIdentifiers.pkcs_9_at_extensionRequest)) {
            Extensions ext = Extensions.getInstance(attr.getAttrValues().getObjectAt(0));
            GeneralNames names = GeneralNames.fromExtensions(ext, Extension.subjectAlternativeName);
            if (names != null) {
                for (GeneralName n : names.getNames()) {
                    out.add(switch (n.getTagNo()) {
                        case GeneralName.uniformResourceIdentifier -> "URI:" + n.getName();
                        case GeneralName.dNSName -> "DNS:" + n.getName();
                        case GeneralName.iPAddress -> "IP:" + n.getName();
                        default -> "tag" + n.getTagNo() + ":" + n.getName();
                    });
                }
            }
        }
        return out;
    }
}
