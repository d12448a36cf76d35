"""Built-in training recipes, one module per trainable method; a method's spec names its recipe
(``training_recipe = "focusstudio.core.training.recipes.<name>:<Class>"``), imported only to train."""
