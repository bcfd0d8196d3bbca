package dev.isthmus.trust.ca;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.hamcrest.Matchers.hasSize;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.trust.v1.IssueRequest;
import dev.isthmus.api.trust.v1.WatchBundleRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import dev.isthmus.trust.grpc.WorkloadCertificatesServiceTest;
import io.grpc.ManagedChannelBuilder;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** Root rotation with overlap, on short periods: distribute, switch, retire; no certificate ever stops verifying. */
@QuarkusTest
@TestProfile(RootRotationTest.ShortPeriods.class)
class RootRotationTest {

    public static class ShortPeriods implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("isthmus.ca.dir", "target/test-ca-rotation-" + UUID.randomUUID(), "isthmus.ca.rotation.distribution-period", "2s",
                    "isthmus.ca.max-svid-ttl", "3s", "isthmus.admin.token", "bridge-admin-credential-0123");
        }
    }

    static X509Certificate issue() throws Exception {
        var channel = ManagedChannelBuilder.forAddress("127.0.0.1", 18291).usePlaintext().build();
        try {
            var res = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS).issue(IssueRequest.newBuilder()
                    .setCsrPem(dev.isthmus.trust.vault.VaultBackendTest.csr()).setSpiffeId(WorkloadCertificatesServiceTest.ID)
                    .setCredential(WorkloadCertificatesServiceTest.CREDENTIAL).build());
            return parse(res.getCertificatePem());
        } finally {
            channel.shutdownNow();
        }
    }

    static X509Certificate parse(String pem) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
    }

    static X509Certificate bundleRoot(int i) throws Exception {
        String b64 = given().get("/api/v1/trust/bundle").then().statusCode(200).extract().path("keys[" + i + "].x5c[0]");
        return (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(java.util.Base64.getDecoder().decode(b64)));
    }

    static void awaitPhase(String phase) throws InterruptedException {
        Instant deadline = Instant.now().plusSeconds(10);
        while (!phase.equals(given().get("/api/v1/trust/rotation").then().extract().path("phase"))) {
            if (Instant.now().isAfter(deadline)) {
                throw new AssertionError("phase " + phase + " not reached");
            }
            Thread.sleep(100);
        }
    }

    static boolean verifiesAgainstBundle(X509Certificate cert) throws Exception {
        int n = given().get("/api/v1/trust/bundle").then().extract().path("keys.size()");
        for (int i = 0; i < n; i++) {
            try {
                cert.verify(bundleRoot(i).getPublicKey());
                return true;
            } catch (java.security.GeneralSecurityException e) {
                // try the next root
            }
        }
        return false;
    }

    @Test
    void aRotationDistributesTheNewRootFirstThenSignsWithItThenRetiresTheOld() throws Exception {
        given().get("/api/v1/trust/rotation").then().statusCode(200).body("phase", equalTo("Stable")).body("roots", hasSize(1));
        X509Certificate oldRoot = bundleRoot(0);
        X509Certificate beforeRotation = issue();
        given().post("/api/v1/trust/rotate").then().statusCode(401).contentType("application/problem+json");
        given().auth().oauth2("wrong-admin-credential").post("/api/v1/trust/rotate").then().statusCode(403);

        var client = new dev.isthmus.proxy.identity.SvidClient("127.0.0.1:18291", WorkloadCertificatesServiceTest.ID,
                WorkloadCertificatesServiceTest.CREDENTIAL, java.time.Duration.ZERO);
        client.start();
        Instant waitUntil = Instant.now().plusSeconds(10);
        while (client.current().isEmpty() && Instant.now().isBefore(waitUntil)) {
            Thread.sleep(50);
        }
        assertEquals(1, client.current().orElseThrow().trustRoots().size());

        var channel = ManagedChannelBuilder.forAddress("127.0.0.1", 18291).usePlaintext().build();
        var watch = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(20, TimeUnit.SECONDS)
                .watchBundle(WatchBundleRequest.newBuilder().setCredential(WorkloadCertificatesServiceTest.CREDENTIAL).build());
        long firstSequence = watch.next().getSequence();

        given().auth().oauth2("bridge-admin-credential-0123").post("/api/v1/trust/rotate").then().statusCode(202)
                .body("phase", equalTo("Distributing")).body("roots", hasSize(2));
        given().auth().oauth2("bridge-admin-credential-0123").post("/api/v1/trust/rotate").then().statusCode(409)
                .body("detail", containsString("already under way"));
        var pushed = watch.next();
        assertTrue(pushed.getSequence() > firstSequence);
        assertEquals(2, pushed.getRootsOrThrow("test-east.acme.isthmus").getCertificatePemCount(), "the watch pushes the new root");
        waitUntil = Instant.now().plusSeconds(5);
        while (client.current().orElseThrow().trustRoots().size() < 2 && Instant.now().isBefore(waitUntil)) {
            Thread.sleep(50);
        }
        assertEquals(2, client.current().orElseThrow().trustRoots().size(), "the proxies' client learns the new root before it signs");
        client.close();
        X509Certificate duringDistribution = issue();
        duringDistribution.verify(oldRoot.getPublicKey()); // the old root still signs while the new one is distributed

        awaitPhase("Issuing");
        X509Certificate afterSwitch = issue();
        X509Certificate newRoot = bundleRoot(0);
        assertNotEquals(oldRoot, newRoot);
        afterSwitch.verify(newRoot.getPublicKey());
        assertTrue(verifiesAgainstBundle(beforeRotation), "certificates of the old root still verify while it is retiring");

        awaitPhase("Stable");
        given().get("/api/v1/trust/bundle").then().body("keys", hasSize(1));
        assertEquals(newRoot, bundleRoot(0));
        assertTrue(verifiesAgainstBundle(afterSwitch));
        channel.shutdownNow();
    }
}
