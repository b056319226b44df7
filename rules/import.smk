# Imported data (config data.source cp2k or extxyz, issue 30): the canonical data set from the
# group's own files instead of qdff's AIMD; everything downstream reads the same frames.extxyz.


rule import_data:
    """CP2K run directories or extxyz files of data.paths -> one extxyz data set in eV and Angstrom (qdff import)."""
    input:
        # every file read (an extxyz, or all files of a CP2K run directory): a changed file re-runs the import
        qdata.input_files(config["data"]),
    output:
        frames="results/{system}/dataset/frames.extxyz",
        summary="results/{system}/dataset/import.json",
    log:
        "logs/import_data/{system}.log",
    benchmark:
        "results/benchmarks/import_data/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        data=canonical(config["data"]),
    script:
        "../scripts/import_data.py"


rule structure_from_data:
    """The structure of a config without `structure:` (structure.source data): the imported data set's first frame, not relaxed."""
    input:
        "results/{system}/dataset/frames.extxyz",
    output:
        structure="results/{system}/structure.extxyz",
        summary="results/{system}/structure.json",
    log:
        "logs/structure_from_data/{system}.log",
    benchmark:
        "results/benchmarks/structure_from_data/{system}.tsv"
    conda:
        "../envs/analysis.yaml"
    params:
        structure=canonical(config["structure"]),
    script:
        "../scripts/structure_from_data.py"


# build_structure (rules/structure.smk) writes the same files from a given `structure:` block
if config["structure"]["source"] == "data":

    ruleorder: structure_from_data > build_structure

else:

    ruleorder: build_structure > structure_from_data
