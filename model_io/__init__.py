"""Everything about weights: where they live, safe loading, layout conversion, the V2M format."""
