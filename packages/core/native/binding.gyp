{
  "targets": [
    {
      "target_name": "callosum_kernels",
      "sources": ["addon.cc", "mat-mul.cc", "vectors.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno", "-Wno-psabi"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-math-errno", "-Wno-psabi"] },
      "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/fp:precise"] } }
    }
  ]
}
