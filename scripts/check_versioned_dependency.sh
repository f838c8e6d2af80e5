#!/usr/bin/env bash
# Builds and runs a package that depends on swift-idefics by version, as a user's Package.swift would: a throwaway
# clone of the committed tree tagged 0.1.0, resolved through a file:// URL. SwiftPM refuses versioned dependencies
# with unsafe build flags, so this fails if a target gains one. Usage: scripts/check_versioned_dependency.sh [REV]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-hardlinks "$repo" "$work/swift-idefics"
git -C "$work/swift-idefics" checkout --quiet "${1:-HEAD}"
git -C "$work/swift-idefics" -c user.name=ci -c user.email=ci@localhost tag 0.1.0
mkdir -p "$work/consumer/Sources/consumer"
cat > "$work/consumer/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "consumer",
    dependencies: [.package(url: "file://$work/swift-idefics", from: "0.1.0")],
    targets: [.executableTarget(name: "consumer", dependencies: [.product(name: "Idefics", package: "swift-idefics")])]
)
SWIFT
cat > "$work/consumer/Sources/consumer/main.swift" <<'SWIFT'
import Idefics

let prompt = try Idefics2Prompt.expand("<image>Hi", imageCount: 1, imageSequenceLength: 2, splitImages: false)
print("versioned dependency OK: \(prompt), kernels \(KernelPath.active.rawValue)")
SWIFT
cd "$work/consumer"
swift build --quiet 2>&1 | tail -n 20
"$(swift build --show-bin-path)/consumer"
