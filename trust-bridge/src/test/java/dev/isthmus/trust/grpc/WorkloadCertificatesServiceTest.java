package dev.isthmus.trust.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.trust.v1.IssueRequest;
import dev.isthmus.api.trust.v1.WatchBundleRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.quarkus.test.junit.QuarkusTest;
import java.io.ByteArrayInputStream;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.ExtensionsGenerator;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The WorkloadCertificates service over a real gRPC connection to the running bridge. */
@QuarkusTest
public class WorkloadCertificatesServiceTest {

    public static final String CREDENTIAL = "test-bootstrap-credential-0123456789";
    public static final String ID = "spiffe://test-east.acme.isthmus/ns/shop/sa/product-catalog";
    static ManagedChannel channel;
    static WorkloadCertificatesGrpc.WorkloadCertificatesBlockingStub stub;

    @BeforeAll
    static void connect() {
        channel = ManagedChannelBuilder.forAddress("127.0.0.1", 18291).usePlaintext().build();
        stub = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
    }

    @AfterAll
    static void close() {
        channel.shutdownNow();
    }

    static KeyPair keys(String alg, Object spec) throws Exception {
        var g = KeyPairGenerator.getInstance(alg);
        if (spec instanceof Integer bits) {
            g.initialize(bits);
        } else {
            g.initialize(new ECGenParameterSpec((String) spec));
        }
        return g.generateKeyPair();
    }

    static String csr(KeyPair pair, String sigAlg, String... uris) throws Exception {
        var b = new JcaPKCS10CertificationRequestBuilder(new X500Name("CN=workload"), pair.getPublic());
        if (uris.length > 0) {
            var ext = new ExtensionsGenerator();
            GeneralName[] names = new GeneralName[uris.length];
            for (int i = 0; i < uris.length; i++) {
                names[i] = new GeneralName(GeneralName.uniformResourceIdentifier, uris[i]);
            }
            ext.addExtension(Extension.subjectAlternativeName, true, new GeneralNames(names));
            b.addAttribute(PKCSObjectIdentifiers.pkcs_9_at_extensionRequest, ext.generate());
        }
        var out = new StringWriter();
        try (var w = new JcaPEMWriter(out)) {
            w.writeObject(b.build(new JcaContentSignerBuilder(sigAlg).build(pair.getPrivate())));
        }
        return out.toString();
    }

    static IssueRequest.Builder request(String csrPem) {
        return IssueRequest.newBuilder().setCsrPem(csrPem).setSpiffeId(ID).setCredential(CREDENTIAL);
    }

    static X509Certificate parse(String pem) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
    }

    @Test
    void aValidRequestGetsAnSvidThatVerifiesAgainstTheBundle() throws Exception {
        var pair = keys("EC", "secp256r1");
        var res = stub.issue(request(csr(pair, "SHA256withECDSA", ID)).build());
        X509Certificate cert = parse(res.getCertificatePem());
        X509Certificate root = parse(res.getChainPem(0));
        cert.verify(root.getPublicKey());
        assertEquals(pair.getPublic(), cert.getPublicKey());
        assertEquals(List.of(List.of(6, ID)), cert.getSubjectAlternativeNames().stream().map(l -> List.copyOf(l)).toList());
        assertEquals(-1, cert.getBasicConstraints(), "not a CA");
        assertTrue(cert.getExtendedKeyUsage().containsAll(List.of("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2")));
        long hours = Duration.between(Instant.now(), cert.getNotAfter().toInstant()).toHours();
        assertTrue(hours >= 23 && hours <= 24, "default TTL 24 h, got " + hours + " h");
        assertEquals(root.getEncoded().length, parse(res.getBundle().getRootsOrThrow("test-east.acme.isthmus").getCertificatePem(0)).getEncoded().length);
        // No SAN in the CSR is fine: the bridge puts the requested ID; a short TTL is honoured.
        var shortLived = stub.issue(request(csr(keys("EC", "secp256r1"), "SHA256withECDSA")).setTtlSeconds(600).build());
        assertTrue(parse(shortLived.getCertificatePem()).getNotAfter().toInstant().isBefore(Instant.now().plusSeconds(601)));
    }

    static StatusRuntimeException refused(IssueRequest r) {
        return assertThrows(StatusRuntimeException.class, () -> stub.issue(r));
    }

    /** The sum of a Prometheus metric's samples whose line starts with {@code prefix} (name and labels). */
    static double metric(String prefix) {
        double sum = 0;
        for (String line : io.restassured.RestAssured.given().get("/q/metrics").asString().split("\n")) {
            if (line.startsWith(prefix)) {
                sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
            }
        }
        return sum;
    }

    static final List<String> REASONS = List.of("missing_credential", "unknown_credential", "malformed_csr", "wrong_key_type", "wrong_san",
            "foreign_trust_domain", "bad_spiffe_id", "too_large", "bad_csr_signature");

    @Test
    void everyBadRequestIsRefusedWithAPreciseStatusAndMessage() throws Exception {
        String good = csr(keys("EC", "secp256r1"), "SHA256withECDSA", ID);
        double issuedBefore = metric("isthmus_svid_issued_total");
        var refusedBefore = new java.util.HashMap<String, Double>();
        for (String reason : REASONS) {
            refusedBefore.put(reason, metric("isthmus_svid_refused_total{reason=\"" + reason + "\""));
        }

        var e = refused(request(good).setCredential("").build());
        assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
        e = refused(request(good).setCredential("guessed-credential-value").build());
        assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("not this cluster's bootstrap credential"));

        e = refused(request("not a csr").build());
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("CERTIFICATE REQUEST"), e.getStatus().getDescription());

        e = refused(request(csr(keys("RSA", 2048), "SHA256withRSA", ID)).build());
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("RSA"), e.getStatus().getDescription());

        e = refused(request(csr(keys("EC", "secp384r1"), "SHA384withECDSA", ID)).build());
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("P-256"), e.getStatus().getDescription());

        e = refused(request(csr(keys("EC", "secp256r1"), "SHA256withECDSA", "spiffe://test-east.acme.isthmus/ns/shop/sa/admin")).build());
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("only SAN allowed"), e.getStatus().getDescription());

        e = refused(request(good).setSpiffeId("spiffe://other.acme.isthmus/ns/shop/sa/product-catalog").build());
        assertEquals(Status.Code.PERMISSION_DENIED, e.getStatus().getCode());
        e = refused(request(good).setSpiffeId("spiffe://test-east.acme.isthmus/product-catalog").build());
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());

        e = refused(request("-----BEGIN CERTIFICATE REQUEST-----\n" + "A".repeat(20_000) + "\n-----END CERTIFICATE REQUEST-----\n").build());
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());

        // A CSR whose body was altered after signing.
        String[] lines = good.split("\n");
        char c = lines[3].charAt(5);
        lines[3] = lines[3].substring(0, 5) + (c == 'A' ? 'B' : 'A') + lines[3].substring(6);
        e = refused(request(String.join("\n", lines)).build());
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());

        assertEquals(issuedBefore, metric("isthmus_svid_issued_total"), "nothing was issued");
        for (String reason : REASONS) {
            assertTrue(metric("isthmus_svid_refused_total{reason=\"" + reason + "\"") > refusedBefore.get(reason), "refusals counted as " + reason);
        }
    }

    @Test
    void theBundleWatchStartsWithTheCurrentBundleAndNeedsTheCredential() {
        var it = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                .watchBundle(WatchBundleRequest.newBuilder().setCredential(CREDENTIAL).build());
        var first = it.next();
        assertEquals("test-east.acme.isthmus", first.getTrustDomain());
        assertFalse(first.getRootsOrThrow("test-east.acme.isthmus").getCertificatePemList().isEmpty());
        var denied = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                .watchBundle(WatchBundleRequest.newBuilder().setCredential("nope").build());
        var e = assertThrows(StatusRuntimeException.class, denied::next);
        assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode());
    }
}
