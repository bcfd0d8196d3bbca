package dev.isthmus.controller.membership;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.names.ClusterName;
import dev.isthmus.api.names.FederationName;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * A join token: {@code isthmus-join-v1.<payload>.<signature>}, both parts base64url without padding.
 * The payload is JSON naming the federation, the issuing cluster and the fingerprint of its key,
 * the NATS servers to reach it, an optional cluster the token is for, and its expiry; the signature
 * is the issuer's Ed25519 signature over the payload bytes. Only the issuer can check the signature
 * and that the token is unused, so joins go to the issuer.
 *
 * @param id random, names the token for one-time use
 * @param federation the federation to join
 * @param issuer the cluster that made the token and admits the joiner
 * @param issuerKey {@link ClusterIdentity#fingerprint} of the issuer's key; the joiner checks the
 *     issuer's answer against it
 * @param natsUrls NATS servers of the issuer's region
 * @param cluster the only cluster that may use the token, or null for any name
 * @param issuedAt when it was made
 * @param expiresAt after this it is refused
 */
public record JoinToken(String id, String federation, String issuer, String issuerKey, List<String> natsUrls, String cluster,
        Instant issuedAt, Instant expiresAt) {

    public static final String PREFIX = "isthmus-join-v1";

    /** A token that cannot be read, with what is wrong with it. */
    public static final class MalformedTokenException extends Exception {
        public MalformedTokenException(String message) {
            super(message);
        }
    }

    /** A token read from its text, with the signature and payload bytes kept for verification. */
    public record Signed(JoinToken token, byte[] payload, byte[] signature) {

        public boolean verifiedBy(String publicKeyBase64) {
            return ClusterIdentity.verify(publicKeyBase64, payload, signature);
        }
    }

    public boolean expiredAt(Instant now) {
        return !now.isBefore(expiresAt);
    }

    /** The token's text, signed by {@code identity}. */
    public String encode(ObjectMapper json, ClusterIdentity identity) {
        var node = json.createObjectNode();
        node.put("id", id).put("federation", federation).put("issuer", issuer).put("issuerKey", issuerKey);
        var urls = node.putArray("natsUrls");
        natsUrls.forEach(urls::add);
        if (cluster != null) {
            node.put("cluster", cluster);
        }
        node.put("issuedAt", issuedAt.getEpochSecond()).put("expiresAt", expiresAt.getEpochSecond());
        byte[] payload = node.toString().getBytes(StandardCharsets.UTF_8);
        var b64 = Base64.getUrlEncoder().withoutPadding();
        return PREFIX + "." + b64.encodeToString(payload) + "." + b64.encodeToString(identity.sign(payload));
    }

    /** Reads a token's text; the message of the exception says which part is wrong and how. */
    public static Signed parse(String text, ObjectMapper json) throws MalformedTokenException {
        if (text == null || text.isBlank()) {
            throw new MalformedTokenException("the token is empty; pass the text printed by `isthmus token create`");
        }
        String t = text.strip();
        String[] parts = t.split("\\.", -1);
        if (parts.length != 3) {
            throw new MalformedTokenException("the token has " + parts.length + " dot-separated part(s), expected 3 ("
                    + PREFIX + ".<payload>.<signature>); was it cut when copied?");
        }
        if (!parts[0].equals(PREFIX)) {
            throw new MalformedTokenException("the token starts with '" + abbreviate(parts[0]) + "', expected '" + PREFIX + "'");
        }
        byte[] payload;
        byte[] signature;
        try {
            payload = Base64.getUrlDecoder().decode(parts[1]);
        } catch (IllegalArgumentException e) {
            throw new MalformedTokenException("the token's payload (part 2) is not base64url: " + e.getMessage());
        }
        try {
            signature = Base64.getUrlDecoder().decode(parts[2]);
        } catch (IllegalArgumentException e) {
            throw new MalformedTokenException("the token's signature (part 3) is not base64url: " + e.getMessage());
        }
        if (signature.length != 64) {
            throw new MalformedTokenException("the token's signature (part 3) is " + signature.length
                    + " bytes, an Ed25519 signature is 64; was it cut when copied?");
        }
        JsonNode node;
        try {
            node = json.readTree(payload);
        } catch (java.io.IOException e) {
            throw new MalformedTokenException("the token's payload (part 2) is not JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
        if (node == null || !node.isObject()) {
            throw new MalformedTokenException("the token's payload (part 2) is not a JSON object");
        }
        String id = text(node, "id");
        String federation = text(node, "federation");
        String issuer = text(node, "issuer");
        String issuerKey = text(node, "issuerKey");
        try {
            FederationName.of(federation);
            ClusterName.of(issuer);
        } catch (IllegalArgumentException e) {
            throw new MalformedTokenException("the token's payload has a bad name: " + e.getMessage());
        }
        if (!issuerKey.startsWith("sha256:")) {
            throw new MalformedTokenException("the token's payload field 'issuerKey' is not a sha256: fingerprint");
        }
        var urls = new ArrayList<String>();
        JsonNode u = node.get("natsUrls");
        if (u == null || !u.isArray()) {
            throw new MalformedTokenException("the token's payload misses the array field 'natsUrls'");
        }
        u.forEach(n -> urls.add(n.asText()));
        String cluster = node.hasNonNull("cluster") ? node.get("cluster").asText() : null;
        if (cluster != null) {
            try {
                ClusterName.of(cluster);
            } catch (IllegalArgumentException e) {
                throw new MalformedTokenException("the token's payload field 'cluster': " + e.getMessage());
            }
        }
        Instant issuedAt = Instant.ofEpochSecond(number(node, "issuedAt"));
        Instant expiresAt = Instant.ofEpochSecond(number(node, "expiresAt"));
        return new Signed(new JoinToken(id, federation, issuer, issuerKey, List.copyOf(urls), cluster, issuedAt, expiresAt),
                payload, signature);
    }

    private static String text(JsonNode node, String field) throws MalformedTokenException {
        JsonNode v = node.get(field);
        if (v == null || !v.isTextual() || v.asText().isEmpty()) {
            throw new MalformedTokenException("the token's payload misses the text field '" + field + "'");
        }
        return v.asText();
    }

    private static long number(JsonNode node, String field) throws MalformedTokenException {
        JsonNode v = node.get(field);
        if (v == null || !v.canConvertToLong()) {
            throw new MalformedTokenException("the token's payload misses the number field '" + field + "' (epoch seconds)");
        }
        return v.asLong();
    }

    private static String abbreviate(String s) {
        return s.length() <= 24 ? s : s.substring(0, 24) + "...";
    }
}
