package dev.isthmus.trust.vault;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.isthmus.api.trust.v1.WatchBundleRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import dev.isthmus.trust.ca.EmbeddedRoot;
import dev.isthmus.trust.ca.VaultBackend;
import io.grpc.ManagedChannelBuilder;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.nio.file.Files;
import java.time.Duration;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A bridge restarted with the Vault backend while its controller (and so the federation's bus) is
 * away still trusts the other members: it takes the federated bundle it kept in Vault KV.
 */
@QuarkusTest
@TestProfile(VaultKeptBundleTest.ControllerAway.class)
class VaultKeptBundleTest {

    static volatile String otherRootDer;

    public static class ControllerAway implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("isthmus.controller.url", "http://127.0.0.1:9"); // nothing listens there
        }

        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(KeptBundle.class));
        }
    }

    /** The Vault test server with a federated bundle already in KV, as a previous run of the bridge left it. */
    public static class KeptBundle extends VaultBridgeTest.FakeVault {
        @Override
        public Map<String, String> start() {
            Map<String, String> config = super.start();
            try {
                var other = EmbeddedRoot.loadOrCreate(Files.createTempDirectory("other-root"), "other.acme.isthmus", Duration.ofDays(1));
                otherRootDer = Base64.getEncoder().encodeToString(other.certificate().getEncoded());
                var settings = new VaultBackend.Settings(config.get("isthmus.vault.address"), "bridge-test-token", null, null, "unused", "svid",
                        "secret", false, Duration.ofDays(1));
                new VaultBackend(settings, VaultBackendTest.TD).storeBundle("{\"other.acme.isthmus\":{\"trust_domain\":\"other.acme.isthmus\","
                        + "\"keys\":[{\"use\":\"x509-svid\",\"x5c\":[\"" + otherRootDer + "\"]}]}}");
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
            return config;
        }
    }

    @Test
    void theFederatedBundleKeptInVaultIsUsedWhileTheControllerIsAway() throws Exception {
        VaultBridgeTest.awaitReady();
        var channel = ManagedChannelBuilder.forAddress("127.0.0.1", 18291).usePlaintext().build();
        try {
            Instant until = Instant.now().plusSeconds(15);
            while (true) {
                var bundle = WorkloadCertificatesGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                        .watchBundle(WatchBundleRequest.newBuilder().setCredential("test-bootstrap-credential-0123456789").build()).next();
                if (bundle.containsRoots("other.acme.isthmus") || Instant.now().isAfter(until)) {
                    var pem = bundle.getRootsOrThrow("other.acme.isthmus").getCertificatePem(0);
                    String der = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
                    assertEquals(otherRootDer, der, "the other member's root, from Vault KV");
                    break;
                }
                Thread.sleep(200);
            }
        } finally {
            channel.shutdownNow();
        }
    }
}
