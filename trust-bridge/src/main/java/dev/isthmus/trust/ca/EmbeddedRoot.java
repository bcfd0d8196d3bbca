package dev.isthmus.trust.ca;

import java.io.IOException;
import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.cert.X509CertificateHolder;

/**
 * The root CA of one trust domain, made with BouncyCastle (ECDSA P-256) on first start and kept on
 * disk: {@code root-key.pem} readable by the owner only, {@code root-cert.pem}. A restart reloads
 * both, so certificates issued before stay valid.
 */
public record EmbeddedRoot(String trustDomain, X509Certificate certificate, PrivateKey key) {


    /** Loads the root kept in {@code dir}, or makes and stores one if there is none. */
    public static EmbeddedRoot loadOrCreate(Path dir, String trustDomain, Duration ttl) throws IOException, GeneralSecurityException {
        return loadOrCreate(dir, "root", trustDomain, ttl);
    }

    /**
     * Loads, or makes, the root stored as {@code <name>-key.pem} and {@code <name>-cert.pem} in
     * {@code dir}: {@code root} is the one that signs; a rotation also keeps {@code next-root} and
     * {@code retiring-root}.
     */
    public static EmbeddedRoot loadOrCreate(Path dir, String name, String trustDomain, Duration ttl) throws IOException, GeneralSecurityException {
        Path keyFile = dir.resolve(name + "-key.pem");
        Path certFile = dir.resolve(name + "-cert.pem");
        if (Files.exists(keyFile) && Files.exists(certFile)) {
            return load(trustDomain, keyFile, certFile);
        }
        Files.createDirectories(dir);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx------"));
        var generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        KeyPair pair = generator.generateKeyPair();
        X509Certificate cert = selfSign(trustDomain, pair, ttl);
        writeOwnerOnly(keyFile, pem(new org.bouncycastle.openssl.jcajce.JcaPKCS8Generator(pair.getPrivate(), null)));
        Files.writeString(certFile, pem(cert));
        return new EmbeddedRoot(trustDomain, cert, pair.getPrivate());
    }

    /** True if a root named {@code name} is stored in {@code dir}. */
    public static boolean exists(Path dir, String name) {
        return Files.exists(dir.resolve(name + "-key.pem")) && Files.exists(dir.resolve(name + "-cert.pem"));
    }

    /** Renames the stored root {@code from} to {@code to} (replacing {@code to}); the key is moved first. */
    public static void rename(Path dir, String from, String to) throws IOException {
        Files.move(dir.resolve(from + "-key.pem"), dir.resolve(to + "-key.pem"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        Files.move(dir.resolve(from + "-cert.pem"), dir.resolve(to + "-cert.pem"), java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    private static EmbeddedRoot load(String trustDomain, Path keyFile, Path certFile) throws IOException, GeneralSecurityException {
        try (var keyParser = new PEMParser(new StringReader(Files.readString(keyFile)));
             var certParser = new PEMParser(new StringReader(Files.readString(certFile)))) {
            Object keyObject = keyParser.readObject();
            Object certObject = certParser.readObject();
            PrivateKey key;
            if (keyObject instanceof org.bouncycastle.asn1.pkcs.PrivateKeyInfo info) {
                key = new JcaPEMKeyConverter().getPrivateKey(info);
            } else if (keyObject instanceof PEMKeyPair pair) {
                key = new JcaPEMKeyConverter().getKeyPair(pair).getPrivate();
            } else {
                throw new IOException(keyFile + " holds no PEM private key");
            }
            if (!(certObject instanceof X509CertificateHolder holder)) {
                throw new IOException(certFile + " holds no PEM certificate");
            }
            X509Certificate cert = new JcaX509CertificateConverter().getCertificate(holder);
            cert.checkValidity();
            return new EmbeddedRoot(trustDomain, cert, key);
        } catch (IOException e) {
            throw new IOException("the CA files in " + keyFile.getParent() + " cannot be loaded: " + e.getMessage()
                    + " (restore them from backup, or move the directory away to make a new root)", e);
        }
    }

    private static X509Certificate selfSign(String trustDomain, KeyPair pair, Duration ttl) throws GeneralSecurityException, IOException {
        Instant now = Instant.now();
        var subject = new X500Name("O=Isthmus, OU=" + trustDomain + ", CN=Isthmus root " + trustDomain);
        var builder = new JcaX509v3CertificateBuilder(subject, new BigInteger(127, new SecureRandom()),
                Date.from(now.minusSeconds(60)), Date.from(now.plus(ttl)), subject, pair.getPublic());
        var ext = new JcaX509ExtensionUtils();
        builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        builder.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign | KeyUsage.digitalSignature));
        builder.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(pair.getPublic()));
        builder.addExtension(Extension.subjectAlternativeName, false,
                new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, "spiffe://" + trustDomain)));
        try {
            var signer = new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate());
            return new JcaX509CertificateConverter().getCertificate(builder.build(signer));
        } catch (OperatorCreationException e) {
            throw new GeneralSecurityException(e);
        }
    }

    public String certificatePem() {
        try {
            return pem(certificate);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String pem(Object o) throws IOException {
        var out = new StringWriter();
        try (var writer = new JcaPEMWriter(out)) {
            writer.writeObject(o);
        }
        return out.toString();
    }

    private static void writeOwnerOnly(Path file, String content) throws IOException {
        Files.deleteIfExists(file);
        Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.writeString(file, content, StandardOpenOption.TRUNCATE_EXISTING);
    }
}
