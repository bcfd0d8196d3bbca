package dev.isthmus.trust.grpc;

import dev.isthmus.trust.vault.VaultBridgeTest;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import org.junit.jupiter.api.BeforeEach;

/** The SvidClient tests again, with the Vault backend (against the Vault HTTP API test server). */
@QuarkusTest
@TestProfile(VaultBridgeTest.VaultProfile.class)
class VaultSvidClientTest extends SvidClientTest {

    @BeforeEach
    void vaultReady() throws InterruptedException {
        VaultBridgeTest.awaitReady();
    }
}
