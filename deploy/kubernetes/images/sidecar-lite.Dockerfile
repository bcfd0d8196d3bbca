# The sidecar image. Build context: the repository's root, after the build
# (./mvnw -B package -DskipTests): docker build -f deploy/kubernetes/images/sidecar-lite.Dockerfile -t REGISTRY/isthmus/sidecar-lite:0.1.0 .
# The JVM options are the benchmark's (docs/benchmarks.md). Until 2026-11-28 the young generation
# was set apart (-Xms32m -Xmn16m), when an HTTP/2 sidecar's heap grew under load; since the relay's
# own upstream HTTP/2 client it does not, and bench/run proxy with those options gave 97.7 MiB when
# ready and peaks of 122.0 (HTTP/1.1) and 147.4 MiB (HTTP/2), against 84-91, 115-118 and 126-130
# with these. A pod's memory limit is set by its peak. The class-data archive is made in /tmp (an
# emptyDir) at the first exit, so a restarted container starts from it. C2 compiles alone
# (-XX:-TieredCompilation, since 2026-11-28): bench/run proxy with this image's archive
# (ISTHMUS_BENCH_ARCHIVE=cds) gave 65.0 MiB idle and peaks of 87.8 and 100.6 MiB, against
# 67.9-68.4, 101-103 and 114-115 with C1 and C2. The benchmark itself runs on JDK 25 and starts
# from an AOT cache instead (62.7-63.1 MiB idle); this image is JDK 21, which has none.
# e2e KubernetesDeploymentIT lays out this image's files as the COPY lines say and runs its ENTRYPOINT.
FROM eclipse-temurin:21-jre
COPY sidecar-lite/target/sidecar-lite.jar /opt/isthmus/sidecar-lite/
COPY sidecar-lite/target/lib/ /opt/isthmus/sidecar-lite/lib/
WORKDIR /opt/isthmus/sidecar-lite
USER 10001
ENTRYPOINT ["java", "-Xms16m", "-Xmx64m", "-XX:+UseSerialGC", "-XX:-TieredCompilation", "-XX:+ExitOnOutOfMemoryError", "-XX:+UnlockExperimentalVMOptions", "-XX:TrimNativeHeapInterval=1000", "-XX:SharedArchiveFile=/tmp/sidecar-lite.jsa", "-XX:+AutoCreateSharedArchive", "-jar", "/opt/isthmus/sidecar-lite/sidecar-lite.jar"]
