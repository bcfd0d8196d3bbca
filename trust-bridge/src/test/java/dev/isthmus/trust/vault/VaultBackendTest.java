package dev.isthmus.trust.vault;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.trust.ca.SvidIssuer;
import dev.isthmus.trust.ca.VaultBackend;
import io.grpc.Status;
import java.io.StringWriter;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The Vault CA backend. By default against {@link VaultApiTestServer} (Vault's documented HTTP API,
 * not Vault); with {@code -Preal-vault} against the real Vault named by {@code VAULT_ADDR} and
 * {@code VAULT_TOKEN} (a fresh PKI mount per run), and skipped, visibly, when they are not set.
 */
public class VaultBackendTest {

    static final boolean REAL = "real".equals(System.getProperty("isthmus.test.vault"));
    static final String TD = "test-east.acme.isthmus";

    VaultApiTestServer fake;
    String address;
    String token;
    String mount;

    @BeforeEach
    void setUp() throws Exception {
        mount = "pki-isthmus-test-" + UUID.randomUUID().toString().substring(0, 8);
        if (REAL) {
            address = System.getenv("VAULT_ADDR");
            token = System.getenv("VAULT_TOKEN");
            Assumptions.assumeTrue(address != null && token != null,
                    "real-vault profile: VAULT_ADDR and VAULT_TOKEN are not set, so the Vault backend tests are skipped");
        } else {
            token = "root-" + UUID.randomUUID();
            fake = new VaultApiTestServer(token);
            address = fake.address();
        }
    }

    @AfterEach
    void tearDown() {
        if (fake != null) {
            fake.close();
        }
    }

    VaultBackend.Settings settings(String tok, String roleId, String secretId, boolean provision) {
        return new VaultBackend.Settings(address, tok, roleId, secretId, mount, "svid", "secret", provision, Duration.ofHours(24 * 30));
    }

    public static String csr() throws Exception {
        var g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        var pair = g.generateKeyPair();
        var out = new StringWriter();
        try (var w = new JcaPEMWriter(out)) {
            w.writeObject(new JcaPKCS10CertificationRequestBuilder(new X500Name("CN=workload"), pair.getPublic())
                    .build(new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate())));
        }
        return out.toString();
    }

    @Test
    void provisionsMountRootAndRoleThenSignsSvidsThatVerifyAgainstTheRoot() throws Exception {
        var backend = new VaultBackend(settings(token, null, null, true), TD).start();
        X509Certificate root = backend.roots().get(0);
        String id = "spiffe://" + TD + "/ns/shop/sa/product-catalog";
        var signed = backend.sign(csr(), null, id, Duration.ofHours(24));
        signed.certificate().verify(root.getPublicKey());
        assertEquals(List.of(List.of(6, id)), signed.certificate().getSubjectAlternativeNames().stream().map(List::copyOf).toList());
        assertTrue(signed.certificate().getNotAfter().getTime() - System.currentTimeMillis() <= Duration.ofHours(24).toMillis() + 120_000);
        assertEquals(root, signed.chain().get(0));

        // A second start finds everything in place: the same root, nothing made again.
        var again = new VaultBackend(settings(token, null, null, true), TD).start();
        assertEquals(root, again.roots().get(0));
    }

    @Test
    void theRoleRefusesAnIdentityOutsideTheTrustDomain() throws Exception {
        var backend = new VaultBackend(settings(token, null, null, true), TD).start();
        var e = assertThrows(SvidIssuer.Refusal.class, () -> backend.sign(csr(), null, "spiffe://other.acme.isthmus/ns/shop/sa/x", Duration.ofHours(1)));
        assertEquals(Status.Code.FAILED_PRECONDITION, e.code());
        assertTrue(e.getMessage().contains("400") && e.getMessage().contains("other.acme.isthmus"), e.getMessage());
    }

    @Test
    void aRootRotationAddsASecondIssuerSwitchesTheDefaultThenDeletesTheOldOne() throws Exception {
        var backend = new VaultBackend(settings(token, null, null, true), TD).start();
        X509Certificate oldRoot = backend.roots().get(0);
        String id = "spiffe://" + TD + "/ns/shop/sa/orders";
        String next = backend.addNextRoot();
        assertEquals(2, backend.roots().size(), "both roots are in the bundle while the new one is distributed");
        assertEquals(oldRoot, backend.roots().get(0), "the old root is still the default");
        backend.sign(csr(), null, id, Duration.ofHours(1)).certificate().verify(oldRoot.getPublicKey());
        assertEquals(next, backend.addNextRoot(), "asked again (a restart mid-way), the same next root");
        assertEquals(2, backend.roots().size());

        backend.switchTo(next);
        X509Certificate newRoot = backend.roots().get(0);
        assertTrue(!newRoot.equals(oldRoot), "the new root is the default now");
        backend.sign(csr(), null, id, Duration.ofHours(1)).certificate().verify(newRoot.getPublicKey());
        backend.switchTo(next); // idempotent
        assertEquals(newRoot, backend.roots().get(0));

        backend.retireOldRoots();
        assertEquals(List.of(newRoot), backend.roots());
        var e = assertThrows(io.github.jopenlibs.vault.VaultException.class, () -> backend.switchTo("no-such-issuer"));
        assertTrue(e.getMessage().contains("no longer on"), e.getMessage());
    }

    @Test
    void theHealthProbeSaysWhenVaultIsAway() throws Exception {
        var backend = new VaultBackend(settings(token, null, null, true), TD).start();
        assertEquals("", backend.probe());
        Assumptions.assumeTrue(fake != null, "stopping Vault needs the test server");
        fake.stop();
        assertTrue(backend.probe().contains("unreachable"), backend.probe());
    }

    @Test
    void theBundleIsKeptInKvAndReadBack() throws Exception {
        var backend = new VaultBackend(settings(token, null, null, true), TD).start();
        backend.storeBundle("{\"trust_domain\":\"" + TD + "\"}");
        assertEquals("{\"trust_domain\":\"" + TD + "\"}", backend.loadBundle());
    }

    @Test
    void preProvisionedMeansNothingIsCreatedAndAMissingCaIsAClearError() throws Exception {
        var e = assertThrows(io.github.jopenlibs.vault.VaultException.class,
                () -> new VaultBackend(settings(token, null, null, false), TD).start());
        assertTrue(e.getMessage().contains("has no CA certificate"), e.getMessage());
    }

    @Test
    void appRoleLoginWorksAndAWrongSecretIsRefused() throws Exception {
        Assumptions.assumeTrue(fake != null, "AppRole is exercised against the test server only (a real Vault needs a role set up)");
        fake.addAppRole("bridge-role", "s3cret-id");
        var backend = new VaultBackend(settings(null, "bridge-role", "s3cret-id", true), TD).start();
        assertEquals(1, backend.roots().size());
        assertThrows(io.github.jopenlibs.vault.VaultException.class, () -> new VaultBackend(settings(null, "bridge-role", "wrong", true), TD));
    }

    @Test
    void vaultGoneMeansUnavailableNotACrash() throws Exception {
        Assumptions.assumeTrue(fake != null, "needs the test server, which can be stopped");
        var backend = new VaultBackend(settings(token, null, null, true), TD).start();
        fake.stop();
        var e = assertThrows(SvidIssuer.Refusal.class, () -> backend.sign(csr(), null, "spiffe://" + TD + "/ns/shop/sa/a", Duration.ofHours(1)));
        assertEquals(Status.Code.UNAVAILABLE, e.code());
        assertEquals(1, backend.roots().size(), "the roots read before stay");
    }
}
