package dev.isthmus.trust.vault;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.isthmus.api.trust.v1.IssueRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import io.grpc.ManagedChannelBuilder;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The whole bridge with {@code isthmus.ca.backend=vault}, against the Vault HTTP API test server. */
@QuarkusTest
@TestProfile(VaultBridgeTest.VaultProfile.class)
public class VaultBridgeTest {

    public static class VaultProfile implements QuarkusTestProfile {
        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(FakeVault.class));
        }
    }

    /** The running test server, for tests that take Vault away and bring it back. */
    public static volatile VaultApiTestServer current;

    public static class FakeVault implements QuarkusTestResourceLifecycleManager {
        private VaultApiTestServer server;

        @Override
        public Map<String, String> start() {
            try {
                server = new VaultApiTestServer("bridge-test-token");
                current = server;
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
            return Map.of("isthmus.ca.backend", "vault", "isthmus.vault.address", server.address(), "isthmus.vault.token", "bridge-test-token",
                    "isthmus.ca.dir", "target/test-ca-vault-" + java.util.UUID.randomUUID());
        }

        @Override
        public void stop() {
            server.close();
        }
    }

    /** Waits for the Vault backend, which starts in the background. */
    public static void awaitReady() throws InterruptedException {
        for (int i = 0; i < 100 && given().get("/q/health/ready").statusCode() != 200; i++) {
            Thread.sleep(100);
        }
    }

    @Test
    void issuesThroughVaultAndServesVaultsRoot() throws Exception {
        awaitReady();
        given().get("/q/health/ready").then().statusCode(200).body(containsString("\"backend\": \"vault\""));
        String bundle = given().get("/api/v1/trust/bundle").then().statusCode(200).extract().path("keys[0].x5c[0]");
        X509Certificate vaultRoot = (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(java.util.Base64.getDecoder().decode(bundle)));
        assertEquals("CN=test-east.acme.isthmus", vaultRoot.getSubjectX500Principal().getName());

        var channel = ManagedChannelBuilder.forAddress("127.0.0.1", 18291).usePlaintext().build();
        try {
            var res = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                    .issue(IssueRequest.newBuilder().setCsrPem(VaultBackendTest.csr()).setSpiffeId("spiffe://" + VaultBackendTest.TD + "/ns/shop/sa/orders").setCredential("test-bootstrap-credential-0123456789").build());
            X509Certificate cert = (X509Certificate) CertificateFactory.getInstance("X.509")
                    .generateCertificate(new ByteArrayInputStream(res.getCertificatePem().getBytes(StandardCharsets.US_ASCII)));
            cert.verify(vaultRoot.getPublicKey());
        } finally {
            channel.shutdownNow();
        }
    }

    @Test
    void vaultGoneMeansDegradedAndUnavailableRenewalsNotACrashAndItRecovers() throws Exception {
        awaitReady();
        var channel = ManagedChannelBuilder.forAddress("127.0.0.1", 18291).usePlaintext().build();
        var stub = WorkloadCertificatesGrpc.newBlockingStub(channel);
        var request = IssueRequest.newBuilder().setCsrPem(VaultBackendTest.csr()).setSpiffeId("spiffe://" + VaultBackendTest.TD + "/ns/shop/sa/orders")
                .setCredential("test-bootstrap-credential-0123456789").build();
        try {
            current.stop();
            var e = org.junit.jupiter.api.Assertions.assertThrows(io.grpc.StatusRuntimeException.class,
                    () -> stub.withDeadlineAfter(20, TimeUnit.SECONDS).issue(request));
            assertEquals(io.grpc.Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.getStatus().toString());
            // health: still ready (the bundle is served, issued certificates work), but degraded with the reason
            java.time.Instant until = java.time.Instant.now().plusSeconds(15);
            while (!given().get("/q/health/ready").asString().contains("degraded") && java.time.Instant.now().isBefore(until)) {
                Thread.sleep(200);
            }
            given().get("/q/health/ready").then().statusCode(200).body(containsString("\"state\": \"degraded\""))
                    .body(containsString("unreachable"));
            given().get("/q/metrics").then().body(containsString("isthmus_trust_bridge_degraded 1.0"));
            given().get("/api/v1/trust/bundle").then().statusCode(200);

            current.restart();
            until = java.time.Instant.now().plusSeconds(15);
            while (!given().get("/q/health/ready").asString().contains("\"state\": \"ok\"") && java.time.Instant.now().isBefore(until)) {
                Thread.sleep(200);
            }
            given().get("/q/health/ready").then().statusCode(200).body(containsString("\"state\": \"ok\""));
            var res = stub.withDeadlineAfter(20, TimeUnit.SECONDS).issue(request);
            org.junit.jupiter.api.Assertions.assertFalse(res.getCertificatePem().isBlank(), "signs again once Vault is back");
        } finally {
            channel.shutdownNow();
        }
    }
}
