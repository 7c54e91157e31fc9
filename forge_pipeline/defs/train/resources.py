import dagster as dg


def train_resources() -> dict:
    # Training runs in its own process (a crash or OOM there cannot take the Dagster process down); the same
    # Pipes protocol later runs it on a GPU machine or a Kubernetes job with another Pipes client.
    return {"pipes_subprocess_client": dg.PipesSubprocessClient(env={"HF_HUB_OFFLINE": "1"})}
