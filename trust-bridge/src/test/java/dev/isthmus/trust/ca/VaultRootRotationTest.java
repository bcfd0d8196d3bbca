package dev.isthmus.trust.ca;

import dev.isthmus.trust.vault.VaultBridgeTest;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;

/**
 * Root rotation with the Vault backend (against the Vault HTTP API test server): the next root is a
 * second issuer on the PKI mount, made the default at the switch and deleted at retirement.
 */
@QuarkusTest
@TestProfile(VaultRootRotationTest.VaultShortPeriods.class)
class VaultRootRotationTest extends RootRotationTest {

    public static class VaultShortPeriods implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return new RootRotationTest.ShortPeriods().getConfigOverrides();
        }

        @Override
        public List<TestResourceEntry> testResources() {
            return List.of(new TestResourceEntry(VaultBridgeTest.FakeVault.class));
        }
    }

    @BeforeEach
    void vaultReady() throws InterruptedException {
        VaultBridgeTest.awaitReady();
    }
}
