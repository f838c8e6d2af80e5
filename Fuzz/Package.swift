// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for the image decoders, the config readers and the chat template engine; build and run them with scripts/fuzz.sh (which passes -sanitize=fuzzer).
let fuzzers = ["FuzzPNG", "FuzzJPEG", "FuzzPNM", "FuzzBMP", "FuzzProcess", "FuzzConfig", "FuzzTemplate"]

let package = Package(
    name: "IdeficsFuzz",
    platforms: [.macOS(.v15)],
    // The root package is named after its folder (main, a worktree, ...), so name it here.
    dependencies: [.package(name: "swift-idefics", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "Idefics", package: "swift-idefics")]),
    ] + fuzzers.map { .executableTarget(name: $0, dependencies: ["FuzzSupport"]) },
    swiftLanguageModes: [.v5]
)
