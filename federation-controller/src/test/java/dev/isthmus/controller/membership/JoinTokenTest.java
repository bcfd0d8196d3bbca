package dev.isthmus.controller.membership;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.Base64;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class JoinTokenTest {

    final ObjectMapper json = new ObjectMapper();

    @TempDir
    Path dir;

    @Test
    void roundTripsAndVerifiesOnlyWithTheIssuersKey() throws Exception {
        var issuer = ClusterIdentity.loadOrCreate(dir.resolve("i"));
        var other = ClusterIdentity.loadOrCreate(dir.resolve("o"));
        var t = new JoinToken("abc", "acme", "us-east", issuer.fingerprint(), List.of("nats://127.0.0.1:4222"), "eu-west",
                Instant.ofEpochSecond(1000), Instant.ofEpochSecond(2000));
        var parsed = JoinToken.parse(t.encode(json, issuer), json);
        assertEquals(t, parsed.token());
        assertTrue(parsed.verifiedBy(issuer.publicKey()));
        assertFalse(parsed.verifiedBy(other.publicKey()));
        assertTrue(parsed.token().expiredAt(Instant.ofEpochSecond(2000)));
    }

    @Test
    void anAlteredPayloadNoLongerVerifies() throws Exception {
        var issuer = ClusterIdentity.loadOrCreate(dir.resolve("i"));
        String text = new JoinToken("abc", "acme", "us-east", issuer.fingerprint(), List.of(), null, Instant.EPOCH, Instant.ofEpochSecond(9))
                .encode(json, issuer);
        String[] parts = text.split("\\.");
        String payload = new String(Base64.getUrlDecoder().decode(parts[1]), StandardCharsets.UTF_8).replace("\"expiresAt\":9", "\"expiresAt\":99999999999");
        String forged = parts[0] + "." + Base64.getUrlEncoder().withoutPadding().encodeToString(payload.getBytes(StandardCharsets.UTF_8)) + "." + parts[2];
        assertFalse(JoinToken.parse(forged, json).verifiedBy(issuer.publicKey()));
    }

    @Test
    void saysWhatIsWrongWithAMalformedToken() {
        var b64 = Base64.getUrlEncoder().withoutPadding();
        String sig = b64.encodeToString(new byte[64]);
        assertThrows(JoinToken.MalformedTokenException.class, () -> JoinToken.parse("", json));
        var e = assertThrows(JoinToken.MalformedTokenException.class, () -> JoinToken.parse("other.a.b", json));
        assertTrue(e.getMessage().contains("starts with 'other'"), e.getMessage());
        e = assertThrows(JoinToken.MalformedTokenException.class,
                () -> JoinToken.parse(JoinToken.PREFIX + "." + b64.encodeToString("[1]".getBytes()) + "." + sig, json));
        assertTrue(e.getMessage().contains("not a JSON object"), e.getMessage());
        e = assertThrows(JoinToken.MalformedTokenException.class,
                () -> JoinToken.parse(JoinToken.PREFIX + "." + b64.encodeToString("{\"id\":\"x\"}".getBytes()) + "." + sig, json));
        assertTrue(e.getMessage().contains("'federation'"), e.getMessage());
        String badName = "{\"id\":\"x\",\"federation\":\"acme\",\"issuer\":\"US_EAST\",\"issuerKey\":\"sha256:00\",\"natsUrls\":[],\"issuedAt\":1,\"expiresAt\":2}";
        e = assertThrows(JoinToken.MalformedTokenException.class,
                () -> JoinToken.parse(JoinToken.PREFIX + "." + b64.encodeToString(badName.getBytes()) + "." + sig, json));
        assertTrue(e.getMessage().contains("bad name"), e.getMessage());
    }

    @Test
    void theIdentityKeyIsOwnerOnlyAndReloads() throws Exception {
        var a = ClusterIdentity.loadOrCreate(dir.resolve("id"));
        var b = ClusterIdentity.loadOrCreate(dir.resolve("id"));
        assertEquals(a.publicKey(), b.publicKey());
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve("id/cluster-ed25519.key"))));
        Files.writeString(dir.resolve("id/cluster-ed25519.pub"), ClusterIdentity.loadOrCreate(dir.resolve("x")).publicKey());
        assertThrows(java.io.IOException.class, () -> ClusterIdentity.loadOrCreate(dir.resolve("id")));
    }
}
