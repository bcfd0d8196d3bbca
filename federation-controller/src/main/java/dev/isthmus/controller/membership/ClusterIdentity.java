package dev.isthmus.controller.membership;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.HexFormat;

/**
 * This cluster's signing identity: an Ed25519 key pair made on first start and kept in
 * {@code <state-dir>/identity/} (the private key owner-only). Every message the controller puts on
 * the federation's bus, every join token and every roster it hands out is signed with it; members
 * know each other's public keys from the roster.
 */
public final class ClusterIdentity {

    private static final String ALGORITHM = "Ed25519";
    /** Parsed public keys by their base64 form (members' keys are checked on every message). */
    private static final java.util.Map<String, PublicKey> KEYS = new java.util.concurrent.ConcurrentHashMap<>();

    private final PrivateKey privateKey;
    private final String publicKey;

    private ClusterIdentity(PrivateKey privateKey, String publicKey) {
        this.privateKey = privateKey;
        this.publicKey = publicKey;
    }

    /** Loads the key pair from {@code dir}, or makes and stores one if there is none. */
    public static ClusterIdentity loadOrCreate(Path dir) throws IOException {
        Path keyFile = dir.resolve("cluster-ed25519.key");
        Path pubFile = dir.resolve("cluster-ed25519.pub");
        try {
            if (Files.exists(keyFile) && Files.exists(pubFile)) {
                byte[] pkcs8 = Base64.getDecoder().decode(Files.readString(keyFile).strip());
                String pub = Files.readString(pubFile).strip();
                PrivateKey key = KeyFactory.getInstance(ALGORITHM).generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
                var identity = new ClusterIdentity(key, pub);
                byte[] probe = "isthmus-identity-check".getBytes(StandardCharsets.UTF_8);
                if (!verify(pub, probe, identity.sign(probe))) {
                    throw new IOException(keyFile + " and " + pubFile + " are not one key pair");
                }
                return identity;
            }
            KeyPair pair = KeyPairGenerator.getInstance(ALGORITHM).generateKeyPair();
            Files.createDirectories(dir);
            String pub = Base64.getEncoder().encodeToString(pair.getPublic().getEncoded());
            Path tmp = dir.resolve("cluster-ed25519.key.tmp");
            Files.deleteIfExists(tmp);
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(tmp, Base64.getEncoder().encodeToString(pair.getPrivate().getEncoded()) + "\n", StandardOpenOption.TRUNCATE_EXISTING);
            Files.writeString(pubFile, pub + "\n");
            Files.move(tmp, keyFile, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            return new ClusterIdentity(pair.getPrivate(), pub);
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            throw new IOException("cannot load the cluster identity from " + dir + ": " + e.getMessage()
                    + " (move the directory away to make a new identity; the cluster must then join again)", e);
        }
    }

    /** The public key, base64 of its X.509 SubjectPublicKeyInfo. */
    public String publicKey() {
        return publicKey;
    }

    /** {@code sha256:<hex>} of the public key: what join tokens carry to name the issuer's key. */
    public String fingerprint() {
        return fingerprint(publicKey);
    }

    public static String fingerprint(String publicKeyBase64) {
        try {
            byte[] der = Base64.getDecoder().decode(publicKeyBase64);
            return "sha256:" + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(der));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-256 is always available", e);
        }
    }

    public byte[] sign(byte[] data) {
        try {
            Signature s = Signature.getInstance(ALGORITHM);
            s.initSign(privateKey);
            s.update(data);
            return s.sign();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("Ed25519 signing failed", e);
        }
    }

    /** True if {@code signature} is {@code data} signed by the key {@code publicKeyBase64}; false on any malformed input. */
    public static boolean verify(String publicKeyBase64, byte[] data, byte[] signature) {
        if (publicKeyBase64 == null || signature == null) {
            return false;
        }
        try {
            PublicKey key = KEYS.get(publicKeyBase64);
            if (key == null) {
                key = KeyFactory.getInstance(ALGORITHM).generatePublic(new X509EncodedKeySpec(Base64.getDecoder().decode(publicKeyBase64)));
                if (KEYS.size() > 1024) {
                    KEYS.clear();
                }
                KEYS.put(publicKeyBase64, key);
            }
            Signature s = Signature.getInstance(ALGORITHM);
            s.initVerify(key);
            s.update(data);
            return s.verify(signature);
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            return false;
        }
    }
}
