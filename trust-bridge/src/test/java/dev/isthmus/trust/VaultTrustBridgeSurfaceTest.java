package dev.isthmus.trust;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.isthmus.trust.vault.VaultBridgeTest;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.eclipse.microprofile.config.ConfigProvider;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The bridge's surface again, with the Vault backend (against the Vault HTTP API test server). */
@QuarkusTest
@TestProfile(VaultBridgeTest.VaultProfile.class)
class VaultTrustBridgeSurfaceTest extends TrustBridgeSurfaceTest {

    @BeforeEach
    void vaultReady() throws InterruptedException {
        VaultBridgeTest.awaitReady();
    }

    /** With Vault the root key stays in Vault: nothing key-like is written to the CA dir. */
    @Override
    @Test
    void keepsTheRootKeyReadableByItsOwnerOnly() throws Exception {
        Path dir = Path.of(ConfigProvider.getConfig().getValue("isthmus.ca.dir", String.class));
        try (var files = Files.exists(dir) ? Files.list(dir) : java.util.stream.Stream.<Path>empty()) {
            assertEquals(java.util.List.of(), files.filter(f -> f.getFileName().toString().contains("key")).toList());
        }
    }
}
